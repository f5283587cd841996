// What the report page looks like to a reader, measured in the browser's layout.
// Evaluated by tests/report/test_report_page.py; returns one JSON-able object.
(() => {
  const TOLERANCE = 0.5;
  for (const d of document.querySelectorAll("details")) d.open = true;

  const describe = (node) => {
    const el = node.nodeType === Node.TEXT_NODE ? node.parentElement : node;
    const text = (node.textContent || "").trim().slice(0, 60);
    return `${el.tagName.toLowerCase()}.${el.getAttribute("class") || ""} "${text}"`;
  };

  // Every box of rendered text: SVG <text> elements, and each line of HTML text.
  const boxes = [];
  for (const t of document.querySelectorAll("svg text")) {
    const r = t.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) boxes.push({ node: t, r });
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.textContent.trim() || n.parentElement.closest("svg, style, title")) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    for (const r of range.getClientRects()) {
      if (r.width > 0 && r.height > 0) boxes.push({ node: n, r });
    }
  }
  boxes.sort((a, b) => a.r.top - b.r.top);
  const overlaps = [];
  for (let i = 0; i < boxes.length; i++) {
    const a = boxes[i];
    for (let j = i + 1; j < boxes.length && boxes[j].r.top < a.r.bottom - TOLERANCE; j++) {
      const b = boxes[j];
      if (a.node === b.node) continue;
      if (a.r.left < b.r.right - TOLERANCE && b.r.left < a.r.right - TOLERANCE) {
        overlaps.push(`${describe(a.node)} overlaps ${describe(b.node)}`);
      }
    }
  }

  // SVG text must stay inside its chart; HTML content must not spill out of its box.
  const outside = [];
  for (const t of document.querySelectorAll("svg text")) {
    const r = t.getBoundingClientRect();
    const s = t.ownerSVGElement.getBoundingClientRect();
    if (r.left < s.left - TOLERANCE || r.right > s.right + TOLERANCE ||
        r.top < s.top - TOLERANCE || r.bottom > s.bottom + TOLERANCE) {
      outside.push(describe(t));
    }
  }
  const overflowing = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el instanceof SVGElement || el.closest("svg")) continue;
    const style = getComputedStyle(el);
    if (style.display === "inline" || style.display === "contents" || !el.clientWidth) continue;
    if (style.overflowX === "auto" || style.overflowX === "scroll") continue;  // scrolls, by design
    if (el.scrollWidth > el.clientWidth + 1) overflowing.push(describe(el));
  }
  const page = document.documentElement;

  // Chart marks: how big each one is on screen.
  const size = (el) => {
    const r = el.getBoundingClientRect();
    return { width: r.width, height: r.height };
  };
  const charts = {};
  for (const card of document.querySelectorAll("article.card")) {
    const domain = card.dataset.domain;
    const rates = [...card.querySelectorAll("svg.activity rect.rate")].map((el) => ({
      rate: Number(el.dataset.rate),
      compared: Number(el.dataset.compared),
      ...size(el),
    }));
    const days = [...card.querySelectorAll("svg.days rect.day")].map((el) => ({
      compared: Number(el.dataset.compared),
      structural: Number(el.dataset.structural),
      cls: el.getAttribute("class"),
      ...size(el),
    }));
    const bars = [...card.querySelectorAll("svg.latency rect.bar")].map((el) => ({
      cls: el.getAttribute("class"),
      label: el.querySelector("title").textContent,
      ...size(el),
    }));
    // Each route's phase and readiness, and the routes not shadowed.
    const stages = [...card.querySelectorAll(".stage[data-phase]")].map((el) => ({
      route: el.closest("[data-route]").dataset.route,
      phase: el.dataset.phase,
      ready: el.dataset.ready,
      text: el.innerText,
      ...size(el),
    }));
    const notShadowed = [...card.querySelectorAll("ul.not-shadowed li")].map((li) => ({
      route: li.dataset.route,
      requests: Number(li.dataset.requests),
      text: li.innerText,
    }));
    const streak = card.querySelector("svg.days rect.streak");
    const uncovered = [...card.querySelectorAll("svg.activity rect.uncovered")].map(size);
    charts[domain] = {
      rates,
      days,
      bars,
      streak: streak ? size(streak) : null,
      uncovered,
      stages,
      notShadowed,
      text: card.innerText,
      streakText: (card.querySelector("svg.days text.streak-label") || {}).textContent || null,
      status: card.className.replace("card ", ""),
    };
  }
  const banner = document.querySelector("#verdict");
  return {
    overlaps,
    outside,
    overflowing,
    pageScrollsSideways: page.scrollWidth > page.clientWidth + 1,
    textBoxes: boxes.length,
    verdict: banner.dataset.verdict,
    banner: banner.innerText,
    readiness: banner.querySelector("p.readiness").innerText,
    notShadowed: (banner.querySelector("p.not-shadowed") || {}).innerText || "",
    blocking: [...banner.querySelectorAll("li")].map((li) => ({
      status: li.className,
      route: li.dataset.route,
      domain: li.dataset.domain,
      text: li.innerText,
    })),
    charts,
    details: document.querySelector("section.details").innerText,
    scripts: document.scripts.length,
    external: [...document.querySelectorAll("[src], link[href]")].length,
  };
})()
