// execbox embeddable snippets. A page loads this script (and optionally embed.css):
//   <pre data-execbox><code class="language-python">print("hi")</code></pre>
//   <script src="https://execbox.example.org/embed.js"></script>
// and each <pre> or <code> carrying data-execbox gets a Run button calling the execbox this
// script came from (or the one named by the script's data-execbox-url). data-execbox="editable"
// makes the code editable; data-stdin gives the program's stdin. Output is shown as text only.
"use strict";
(function () {
  const script = document.currentScript;
  const base = ((script && script.dataset.execboxUrl) || new URL(script.src).origin).replace(/\/$/, "");
  const KEY_STORAGE = "execbox-api-key";

  function languageOf(code, holder) {
    if (holder.dataset.language) return holder.dataset.language;
    for (const name of code.classList) {
      const match = /^(?:language|lang)-(.+)$/.exec(name);
      if (match) return match[1];
    }
    return "";
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function describe(result) {
    const stage = result.run || result.compile;
    const parts = [result.status];
    if (stage) {
      if (stage.signal) parts.push(`signal ${stage.signal}`);
      else if (stage.exit_code !== null) parts.push(`exit code ${stage.exit_code}`);
      parts.push(`${Math.round(stage.wall_time_ms)} ms`);
    }
    return parts.join(" · ");
  }

  function enhance(holder) {
    if (holder.dataset.execboxReady) return;
    holder.dataset.execboxReady = "1";
    const code = holder.matches("code") ? holder : holder.querySelector("code") || holder;
    const pre = code.closest("pre") || code;
    const language = languageOf(code, holder);
    const original = code.textContent;
    let editor = null;
    if (holder.dataset.execbox === "editable") {
      editor = element("textarea", "execbox-editor");
      editor.value = original;
      editor.rows = Math.max(3, original.split("\n").length);
      editor.spellcheck = false;
      editor.addEventListener("input", () => {
        editor.rows = Math.max(3, editor.value.split("\n").length);
      });
      editor.setAttribute("aria-label", `${language} code`);
      pre.after(editor);
      pre.hidden = true;
    }
    const box = element("div", "execbox-snippet");
    const controls = element("div", "execbox-controls");
    const runButton = element("button", "execbox-run", "Run");
    runButton.type = "button";
    controls.append(runButton);
    if (editor) {
      const reset = element("button", "execbox-reset", "Reset");
      reset.type = "button";
      reset.addEventListener("click", () => {
        editor.value = original;
      });
      controls.append(reset);
    }
    const status = element("p", "execbox-status");
    status.setAttribute("aria-live", "polite");
    const output = element("pre", "execbox-output");
    output.hidden = true;
    box.append(controls, status, output);
    (editor || pre).after(box);

    async function run() {
      runButton.disabled = true;
      status.textContent = "Running…";
      status.dataset.status = "running";
      const headers = { "Content-Type": "application/json" };
      const key = sessionStorage.getItem(KEY_STORAGE);
      if (key) headers["X-API-Key"] = key;
      try {
        const response = await fetch(`${base}/api/v1/execute`, {
          method: "POST",
          headers,
          body: JSON.stringify({
            language,
            code: editor ? editor.value : original,
            stdin: holder.dataset.stdin || "",
          }),
        });
        const result = await response.json();
        if (response.status === 401) return askForKey(result.message);
        if (!response.ok) {
          status.textContent = `${response.status}: ${result.message}`;
          status.dataset.status = "error";
          return;
        }
        const compile = result.compile ? result.compile.stdout + result.compile.stderr : "";
        const ran = result.run ? result.run.stdout + result.run.stderr : "";
        output.textContent = compile + ran;
        output.hidden = false;
        status.textContent = describe(result);
        status.dataset.status = result.status;
      } catch (err) {
        status.textContent = `execbox could not be reached: ${err.message}`;
        status.dataset.status = "error";
      } finally {
        runButton.disabled = false;
      }
    }

    // The key is typed by the reader and kept in this tab only; a page never embeds one.
    function askForKey(message) {
      status.textContent = `${message}: `;
      status.dataset.status = "unauthorized";
      const input = element("input", "execbox-key");
      input.type = "password";
      input.setAttribute("aria-label", "execbox API key");
      input.addEventListener("keydown", (event) => {
        if (event.key !== "Enter") return;
        sessionStorage.setItem(KEY_STORAGE, input.value.trim());
        run();
      });
      status.append(input);
      input.focus();
    }

    runButton.addEventListener("click", run);
    (editor || pre).addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        run();
      }
    });
  }

  function scan() {
    document.querySelectorAll("[data-execbox]").forEach(enhance);
  }

  window.execbox = { scan, base };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})();
