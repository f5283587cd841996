"""The ``grpc:`` section, the ``--grpc-*`` flags and descriptor files: one-line errors, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from shadowproxy.cli import main
from shadowproxy.config import ConfigError, Overrides, settings_from_document
from tests.grpc.shop import ShopCode

HTTP = {"upstreams": {"legacy": "http://127.0.0.1:9", "candidate": "http://127.0.0.1:9"}}
TARGETS = {"listen": "127.0.0.1:0", "legacy": "127.0.0.1:1", "candidate": "127.0.0.1:2"}


def _settings(grpc: dict[str, Any]) -> Any:
    return settings_from_document({**HTTP, "grpc": grpc}, "cfg.yaml")


def _run(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, list[str]]:
    code = main(
        [
            "run",
            "--legacy",
            "http://127.0.0.1:9",
            "--candidate",
            "http://127.0.0.1:9",
            "--grpc-listen",
            "127.0.0.1:0",
            "--grpc-legacy",
            "127.0.0.1:1",
            "--grpc-candidate",
            "127.0.0.1:2",
            *flags,
        ]
    )
    return code, capsys.readouterr().err.splitlines()


class TestBadDescriptors:
    """A descriptor file that cannot be used stops start-up with ``<file>: <what>``."""

    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            (None, "cannot read"),
            (b"\xff\xff\xff\xff", "not a descriptor set"),
            (b"", "not a descriptor set"),
        ],
    )
    def test_exit_2_one_line(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        content: bytes | None,
        problem: str,
    ) -> None:
        """Missing, corrupt or empty files exit 2 with one line naming the file."""
        path = tmp_path / "api.pb"
        if content is not None:
            path.write_bytes(content)
        code, lines = _run(capsys, "--grpc-descriptors", str(path))
        assert code == 2
        assert len(lines) == 1
        assert lines[0].startswith(f"{path}: ")
        assert problem in lines[0]

    def test_missing_import(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A set built without --include_imports names the missing file."""
        files = descriptor_pb2.FileDescriptorSet()
        proto = files.file.add(name="a.proto", package="a", dependency=["b.proto"])
        proto.service.add(name="S")
        path = tmp_path / "a.pb"
        path.write_bytes(files.SerializeToString())
        code, lines = _run(capsys, "--grpc-descriptors", str(path))
        assert code == 2
        assert lines == [
            f"{path}: a.proto: imports b.proto, which the set lacks (use protoc --include_imports)"
        ]

    def test_no_services(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A set without any service is refused."""
        files = descriptor_pb2.FileDescriptorSet()
        files.file.add(name="m.proto", package="m").message_type.add(name="M")
        path = tmp_path / "m.pb"
        path.write_bytes(files.SerializeToString())
        code, lines = _run(capsys, "--grpc-descriptors", str(path))
        assert (code, lines) == (2, [f"{path}: defines no gRPC service"])

    def test_well_known_imports_filled_in(self, tmp_path: Path) -> None:
        """Imports of google/protobuf/*.proto need not be in the set."""
        files = descriptor_pb2.FileDescriptorSet()
        proto = files.file.add(
            name="t.proto", package="t", dependency=["google/protobuf/timestamp.proto"]
        )
        proto.service.add(name="Clock").method.add(
            name="Now",
            input_type=".google.protobuf.Timestamp",
            output_type=".google.protobuf.Timestamp",
        )
        path = tmp_path / "t.pb"
        path.write_bytes(files.SerializeToString())
        settings = _settings({**TARGETS, "descriptors": str(path)})
        assert settings.grpc.descriptors == str(path)


class TestGrpcSection:
    """Validation of the section, each problem one line naming the key."""

    def test_off_by_default(self) -> None:
        """Without the section or flags there is no gRPC listener."""
        assert settings_from_document(HTTP, "cfg.yaml").grpc is None

    def test_flags_alone(self) -> None:
        """The flags alone configure the listener."""
        settings = settings_from_document(
            HTTP,
            "cfg.yaml",
            Overrides(grpc_listen="127.0.0.1:7000", grpc_legacy="l:1", grpc_candidate="c:2"),
        )
        assert (settings.grpc.listen.port, settings.grpc.legacy) == (7000, "l:1")

    @pytest.mark.parametrize(
        ("section", "message"),
        [
            ({"listen": "127.0.0.1:0", "candidate": "c:1"}, "cfg.yaml: grpc.legacy: is required"),
            ({**TARGETS, "legacy": "nope"}, "cfg.yaml: grpc.legacy: must be HOST:PORT"),
            (
                {**TARGETS, "methods": [{"method": "GetItem"}]},
                "cfg.yaml: grpc.methods[0].method: must be",
            ),
            (
                {**TARGETS, "methods": [{"method": "/a.S/M", "mirror": "yes"}]},
                "cfg.yaml: grpc.methods[0].mirror: must be true or false",
            ),
            (
                {**TARGETS, "methods": [{"method": "/a.S/M", "cardinality": "many"}]},
                "cfg.yaml: grpc.methods[0].cardinality: must be one of",
            ),
            ({**TARGETS, "timeout_s": 0}, "cfg.yaml: grpc.timeout_s: must be > 0"),
            ({**TARGETS, "tls": "yes"}, "cfg.yaml: grpc.tls: must be true or false"),
            ({**TARGETS, "listne": "x"}, "cfg.yaml: grpc.listne: unknown key"),
        ],
    )
    def test_errors(self, section: dict[str, Any], message: str) -> None:
        """Each mistake is a ConfigError naming the file and key."""
        with pytest.raises(ConfigError) as caught:
            _settings(section)
        assert str(caught.value).startswith(message)
        assert "\n" not in str(caught.value)

    def test_method_must_be_in_descriptors(self, shop: ShopCode) -> None:
        """With descriptors, a configured method they lack needs an explicit cardinality."""
        section = {
            **TARGETS,
            "descriptors": str(shop.descriptors),
            "methods": [{"method": "/shop.v1.Shop/Gone"}],
        }
        with pytest.raises(ConfigError, match=r"grpc.methods\[0\].method: is not in the"):
            _settings(section)

    def test_methods_and_rules(self) -> None:
        """Methods carry domain, mirror, sampling, cardinality and compare rules."""
        section = {
            **TARGETS,
            "domain": "shop",
            "methods": [
                {
                    "method": "/a.S/Put",
                    "mirror": True,
                    "sample_percent": 10,
                    "cardinality": "unary_unary",
                    "compare": {"ignore": ["$.updated_at"]},
                }
            ],
        }
        (spec,) = _settings(section).grpc.methods
        assert (spec.domain, spec.mirror, spec.sample_percent) == ("shop", True, 10.0)
        assert spec.rules.ignore == ("$.updated_at",)

    def test_digest_covers_grpc(self) -> None:
        """The configuration digest changes with the gRPC section."""
        first = _settings(TARGETS).digest
        second = _settings({**TARGETS, "timeout_s": 5}).digest
        assert first != second
