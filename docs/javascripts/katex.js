// Typeset the formulas that pymdownx.arithmatex marks (generic mode: \( \) inline, \[ \] display)
// with the KaTeX that the site ships, so that every page renders with no network.
document$.subscribe(({ body }) => {
  for (const element of body.querySelectorAll(".arithmatex")) {
    const tex = element.textContent.trim();
    katex.render(tex.slice(2, -2), element, {
      displayMode: tex.startsWith("\\["),
      throwOnError: false,
    });
  }
});
