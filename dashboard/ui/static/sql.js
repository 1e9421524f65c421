// Colours the SQL of dashboard/ui/sql_block.py and copies it. The text arrives escaped inside
// <pre id="sql">; it is read back with textContent and rebuilt from text nodes and spans whose
// content is set as text, so nothing in a statement can become markup.
(function () {
  "use strict";
  const pre = document.getElementById("sql");
  const source = pre.textContent;
  // Comments, strings and quoted names, numbers and $n parameters, words: one alternation, in order.
  const TOKEN = /(--[^\n]*|\/\*[\s\S]*?\*\/)|('(?:[^']|'')*'?|"(?:[^"]|"")*"?)|(\$\d+|\b\d+(?:\.\d+)?\b)|([A-Za-z_][A-Za-z0-9_$]*)/g;
  const KEYWORDS = new Set(("select from where and or not in is null as on join left right inner outer full " +
    "cross group by order having limit offset insert into values update set delete create index " +
    "concurrently unique drop table with distinct case when then else end between like ilike exists " +
    "union all any asc desc nulls first last returning using interval true false cast over partition " +
    "if alter add primary key references default begin commit rollback explain analyze").split(" "));
  const out = document.createDocumentFragment();
  let at = 0;
  for (const m of source.matchAll(TOKEN)) {
    if (m.index > at) out.appendChild(document.createTextNode(source.slice(at, m.index)));
    const kind = m[1] ? "comment" : m[2] ? "string" : m[3] ? "number"
      : KEYWORDS.has(m[4].toLowerCase()) ? "keyword" : null;
    if (kind) {
      const span = document.createElement("span");
      span.className = kind;
      span.textContent = m[0];
      out.appendChild(span);
    } else {
      out.appendChild(document.createTextNode(m[0]));
    }
    at = m.index + m[0].length;
  }
  if (at < source.length) out.appendChild(document.createTextNode(source.slice(at)));
  pre.replaceChildren(out);

  const button = document.getElementById("copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(source);
    } catch {
      // No clipboard API (plain http on another host): select the text and copy it the old way.
      const range = document.createRange();
      range.selectNodeContents(pre);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
  // As charts.js: this frame has drawn what its element holds (tests and bench/pages.py wait on it).
  window.drawnFor = window.frameElement ? window.frameElement.getAttribute("srcdoc") : null;
  document.body.dataset.ready = "1";
})();
