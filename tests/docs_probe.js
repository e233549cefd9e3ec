// Opens each page of the docs site in a desktop-sized frame, waits for its formulas and diagrams
// to render, and reports what a reader sees. Run by tests/test_docs_browser.py in headless
// Chromium, which reads the JSON report it appends to the page.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function rendered(doc) {
  const math = [...doc.querySelectorAll(".arithmatex")].every((e) => e.querySelector(".katex"));
  return math && !doc.querySelector("pre.mermaid");
}

// Text of the page as displayed, without code (code may hold backslashes and carets).
function prose(win) {
  const doc = win.document;
  const style = doc.createElement("style");
  style.textContent = "pre, code, .doc-signature, .md-footer, .md-header { display: none !important }";
  doc.head.append(style);
  const text = doc.querySelector(".md-content").innerText;
  style.remove();
  return text;
}

// The id of a documented object's heading, its path on the site (e.g. "ltml.BCE").
function identifier(object) {
  const heading = object.querySelector(":scope > .doc-heading");
  return heading ? heading.id : null;
}

function mine(object, selector) {
  return [...object.querySelectorAll(selector)].filter((e) => e.closest(".doc-object") === object);
}

function apiObjects(doc) {
  return [...doc.querySelectorAll(".doc-object")].filter(identifier).map((object) => ({
    id: identifier(object),
    signatures: mine(object, ".doc-signature").map((e) => e.innerText),
    bases: mine(object, ".doc-class-bases").map((e) => e.innerText),
    // Rows of the tables with a Default column (Parameters, Other Parameters).
    defaults: mine(object, "table")
      .filter((t) => [...t.querySelectorAll("th")].some((th) => th.innerText.trim() === "Default"))
      .flatMap((t) =>
        [...t.querySelectorAll("tbody tr")].map((tr) => {
          const cells = [...tr.children].map((td) => td.innerText.trim());
          return [cells[0], cells[cells.length - 1]];
        }),
      ),
    // Names of parameters, attributes ... (the first column of the tables that have one).
    rows: mine(object, "table")
      .filter((t) => t.querySelector("th") && t.querySelector("th").innerText.trim() === "Name")
      .flatMap((t) =>
      [...t.querySelectorAll("tbody tr")].map((tr) => tr.children[0].innerText.trim()),
    ),
  }));
}

// Content wider than its box: a reader sees it cut at the column edge (or must scroll).
function overflowing(doc) {
  const boxes = doc.querySelectorAll(".md-content pre > code, .md-typeset__scrollwrap, .katex-display");
  return [...boxes]
    .filter((e) => e.scrollWidth > e.clientWidth + 2)
    .map((e) => `${e.scrollWidth}px in ${e.clientWidth}px: ${e.innerText.slice(0, 70).replace(/\s+/g, " ")}`);
}

function images(doc) {
  return [...doc.querySelectorAll(".md-content img")].map((img) => ({
    src: img.getAttribute("src"),
    loaded: img.complete && img.naturalWidth > 0,
    // Displayed size relative to the image's own: how much its text is shrunk.
    scale: img.naturalWidth ? img.clientWidth / img.naturalWidth : 0,
  }));
}

async function probe(url, frame) {
  frame.src = url;
  await new Promise((resolve) => (frame.onload = resolve));
  const win = frame.contentWindow;
  for (let i = 0; i < 200 && !rendered(win.document); i++) await sleep(50);
  await sleep(200);
  const doc = win.document;
  return {
    title: doc.title,
    prose: prose(win),
    unrendered_math: [...doc.querySelectorAll(".arithmatex")]
      .filter((e) => !e.querySelector(".katex"))
      .map((e) => e.textContent),
    math_errors: [...doc.querySelectorAll(".katex-error")].map((e) => e.title || e.textContent),
    unrendered_diagrams: [...doc.querySelectorAll(".mermaid")]
      .filter((e) => e.textContent.trim() || e.getBoundingClientRect().height < 20)
      .map((e) => e.textContent.slice(0, 80)),
    diagrams: doc.querySelectorAll(".mermaid").length,
    external: win.performance
      .getEntriesByType("resource")
      .map((e) => e.name)
      .filter((name) => new URL(name).host !== location.host),
    headings: doc.querySelectorAll(".md-content h1").length,
    // Source lines starting with "- " or "1. " that Markdown kept inside a paragraph: a list
    // written without the blank line before it.
    lists_in_paragraphs: [...doc.querySelectorAll(".md-content p")]
      .filter((p) => /\n\s*([-*+]|\d+\.)\s/.test(p.textContent))
      .map((p) => p.textContent.slice(0, 80)),
    api: apiObjects(doc),
    overflowing: overflowing(doc),
    images: images(doc),
  };
}

(async () => {
  const frame = document.createElement("iframe");
  frame.style.width = "1280px";
  frame.style.height = "900px";
  document.body.append(frame);
  const report = {};
  for (const url of PAGES) {
    try {
      report[url] = await probe(url, frame);
    } catch (error) {
      report[url] = { error: String(error) };
    }
  }
  const out = document.createElement("pre");
  out.id = "report";
  out.textContent = JSON.stringify(report);
  document.body.append(out);
})();
