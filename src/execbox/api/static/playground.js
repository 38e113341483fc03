// The playground: editor, language picker, runs over /api/v1/execute, interactive runs over
// Piston's WebSocket (/api/v2/connect), share links. Program output is only ever set as
// textContent: it is text, never markup.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const KEY_STORAGE = "execbox-api-key";
  const LIMIT_FIELDS = ["wall_time_ms", "cpu_time_ms", "memory_mb"];

  let examples = {};
  let maxima = {};
  let socket = null;
  let busy = false;
  let shownLanguage = "";

  // Esc, then Tab, moves focus out of the editor (Tab alone indents): keyboard users are not
  // trapped in it.
  let escaped = false;
  const editor = CodeMirror.fromTextArea($("code"), {
    lineNumbers: true,
    indentUnit: 4,
    screenReaderLabel: "Code",
    extraKeys: {
      "Ctrl-Enter": () => run(),
      "Cmd-Enter": () => run(),
      Esc: () => {
        escaped = true;
      },
      Tab: (cm) => (escaped ? leave(cm, 1) : cm.execCommand(tabCommand(cm))),
      "Shift-Tab": (cm) => (escaped ? leave(cm, -1) : cm.execCommand("indentLess")),
    },
  });
  editor.on("keydown", (_cm, event) => {
    if (event.key !== "Escape" && event.key !== "Tab") escaped = false;
  });

  function tabCommand(cm) {
    if (cm.somethingSelected()) return "indentMore";
    return cm.getOption("indentWithTabs") ? "insertTab" : "insertSoftTab";
  }

  // CodeMirror.Pass would fall through to its default keymap (which indents), so focus is
  // moved here, to the next (or previous) focusable element.
  function leave(cm, step) {
    escaped = false;
    const selector = "button, select, input, textarea, summary, [tabindex]";
    const focusable = [...document.querySelectorAll(selector)].filter(
      (el) => el.tabIndex >= 0 && !el.disabled && el.getClientRects().length > 0,
    );
    const here = focusable.indexOf(cm.getInputField());
    const next = focusable[here + step];
    if (next) next.focus();
  }

  function headers() {
    const h = { "Content-Type": "application/json" };
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) h["X-API-Key"] = key;
    return h;
  }

  function setStatus(text, status) {
    $("status").textContent = text;
    $("status").dataset.status = status || "";
  }

  function clearOutput() {
    for (const id of ["stdout", "stderr", "compile"]) $(id).textContent = "";
    $("compile").hidden = true;
    $("compile-title").hidden = true;
  }

  function showCompile(text) {
    $("compile").textContent = text;
    $("compile").hidden = !text;
    $("compile-title").hidden = !text;
  }

  function setBusy(value, interactive) {
    busy = value;
    $("run").disabled = value;
    $("interactive").disabled = value;
    $("stop").disabled = !(value && interactive);
    $("interactive-box").hidden = !(value && interactive);
  }

  function currentExample() {
    return examples[$("language").value] || {};
  }

  function setLanguage(name, keepCode) {
    // The select already shows the new choice when its change event fires: the language
    // being left is remembered here.
    const before = examples[shownLanguage] || {};
    const select = $("language");
    if (![...select.options].some((o) => o.value === name)) return false;
    select.value = name;
    shownLanguage = name;
    const example = currentExample();
    editor.setOption("mode", example.mode || null);
    editor.setOption("indentWithTabs", Boolean(example.tabs));
    const code = editor.getValue();
    if (!keepCode && (!code.trim() || code === before.hello)) editor.setValue(example.hello || "");
    updateNote();
    return true;
  }

  function updateNote() {
    const option = $("language").selectedOptions[0];
    $("language-note").textContent = option && option.dataset.reason ? option.dataset.reason : "";
  }

  function args() {
    const text = $("args").value;
    return text ? text.split("\n") : [];
  }

  function limits() {
    const chosen = {};
    for (const name of LIMIT_FIELDS) {
      const raw = $(name).value.trim();
      if (!raw) continue;
      const value = Number(raw);
      if (!Number.isInteger(value) || value < 1 || (maxima[name] && value > maxima[name])) {
        throw new Error(`${name} must be a whole number from 1 to ${maxima[name]}`);
      }
      chosen[name] = value;
    }
    return chosen;
  }

  function describe(result) {
    const stage = result.run || result.compile;
    const parts = [result.status];
    if (stage) {
      if (stage.signal) parts.push(`signal ${stage.signal}`);
      else if (stage.exit_code !== null && stage.exit_code !== undefined)
        parts.push(`exit code ${stage.exit_code}`);
      parts.push(`${Math.round(stage.wall_time_ms)} ms`);
      parts.push(`${(stage.memory_bytes / 1048576).toFixed(1)} MB`);
      if (stage.message) parts.push(stage.message);
    }
    return parts.join(" · ");
  }

  async function run() {
    if (busy) return;
    let body;
    try {
      body = {
        language: $("language").value,
        code: editor.getValue(),
        stdin: $("stdin").value,
        args: args(),
        limits: limits(),
      };
    } catch (err) {
      setStatus(err.message, "invalid");
      return;
    }
    clearOutput();
    setBusy(true, false);
    setStatus("Running…", "running");
    try {
      const response = await fetch("/api/v1/execute", {
        method: "POST",
        headers: headers(),
        body: JSON.stringify(body),
      });
      const result = await response.json();
      if (!response.ok) {
        setStatus(`${response.status} ${result.error}: ${result.message}`, "error");
        return;
      }
      if (result.compile) {
        showCompile((result.compile.stdout || "") + (result.compile.stderr || ""));
      }
      if (result.run) {
        $("stdout").textContent = result.run.stdout;
        $("stderr").textContent = result.run.stderr;
      }
      setStatus(describe(result), result.status);
    } catch (err) {
      setStatus(`request failed: ${err.message}`, "error");
    } finally {
      setBusy(false, false);
    }
  }

  function runInteractive() {
    if (busy) return;
    let chosen;
    try {
      chosen = limits();
    } catch (err) {
      setStatus(err.message, "invalid");
      return;
    }
    clearOutput();
    setBusy(true, true);
    setStatus("Connecting…", "running");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/api/v2/connect`);
    let stage = "run";
    let ended = "";
    const init = {
      type: "init",
      language: $("language").value,
      files: [{ content: editor.getValue() }],
      args: args(),
    };
    if (chosen.wall_time_ms) init.run_timeout = chosen.wall_time_ms;
    if (chosen.cpu_time_ms) init.run_cpu_time = chosen.cpu_time_ms;
    if (chosen.memory_mb) init.run_memory_limit = chosen.memory_mb * 1048576;
    // A browser's WebSocket cannot send headers: the key travels in the init message.
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) init.api_key = key;
    socket.onopen = () => socket.send(JSON.stringify(init));
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      switch (event.type) {
        case "runtime":
          setStatus(`${event.language} ${event.version}: starting…`, "running");
          break;
        case "stage":
          stage = event.stage;
          setStatus(stage === "compile" ? "Compiling…" : "Running: type stdin below", "running");
          if (stage === "run") $("stdin-line").focus();
          break;
        case "data":
          if (stage === "compile") showCompile($("compile").textContent + event.data);
          else $(event.stream === "stderr" ? "stderr" : "stdout").textContent += event.data;
          break;
        case "exit":
          ended = event.signal ? `signal ${event.signal}` : `exit code ${event.code}`;
          setStatus(`${event.stage} ended: ${ended}`, "exited");
          break;
        case "error":
          ended = event.message;
          setStatus(`error: ${event.message}`, "error");
          break;
      }
    };
    socket.onclose = () => {
      socket = null;
      setBusy(false, true);
      if (!ended) setStatus("Connection closed.", "closed");
    };
  }

  function sendLine() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const line = $("stdin-line").value + "\n";
    socket.send(JSON.stringify({ type: "data", stream: "stdin", data: line }));
    $("stdin-line").value = "";
  }

  function stop() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "signal", signal: "SIGKILL" }));
    }
  }

  function share() {
    const state = {
      language: $("language").value,
      code: editor.getValue(),
      stdin: $("stdin").value,
      args: args(),
    };
    const url = `${location.origin}${location.pathname}#s=${execboxShare.encode(state)}`;
    history.replaceState(null, "", url);
    $("share-box").hidden = false;
    $("share-link").value = url;
    $("share-link").select();
    if (navigator.clipboard) navigator.clipboard.writeText(url).catch(() => {});
  }

  function restore() {
    if (!location.hash.startsWith("#s=")) return false;
    try {
      const state = execboxShare.decode(location.hash.slice(3));
      setLanguage(state.language, true);
      editor.setValue(state.code);
      $("stdin").value = state.stdin;
      $("args").value = state.args.join("\n");
      return true;
    } catch (err) {
      setStatus(`The share link could not be read: ${err.message}`, "invalid");
      return false;
    }
  }

  async function fetchJSON(url, options) {
    const response = await fetch(url, options);
    const body = await response.json();
    if (!response.ok) throw new Error(`${response.status}: ${body.message || body.error}`);
    return body;
  }

  async function loadLanguages() {
    const languages = await fetchJSON("/api/v1/languages", { headers: headers() });
    const select = $("language");
    select.textContent = "";
    for (const lang of languages) {
      const option = document.createElement("option");
      option.value = lang.language;
      option.textContent = lang.available
        ? `${lang.language} ${lang.version}`
        : `${lang.language} (unavailable)`;
      if (!lang.available) {
        option.disabled = true;
        option.dataset.reason = `${lang.language} is unavailable here: ${lang.reason || ""}`;
      }
      select.append(option);
    }
    const first = languages.find((l) => l.available && l.language === "python")
      || languages.find((l) => l.available);
    if (first) setLanguage(first.language, false);
  }

  async function start() {
    $("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
    $("api-key").addEventListener("change", () => {
      sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
      init();
    });
    $("language").addEventListener("change", () => setLanguage($("language").value, false));
    $("run").addEventListener("click", run);
    $("interactive").addEventListener("click", runInteractive);
    $("stop").addEventListener("click", stop);
    $("share").addEventListener("click", share);
    $("stdin-line").addEventListener("keydown", (event) => {
      if (event.key === "Enter") sendLine();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.defaultPrevented) {
        event.preventDefault();
        run();
      }
    });
    window.addEventListener("hashchange", restore);
    examples = await fetchJSON("/playground/static/examples.json");
    const limitsInfo = await fetchJSON("/playground/limits");
    maxima = limitsInfo.max;
    for (const name of LIMIT_FIELDS) {
      $(name).max = maxima[name];
      $(name).placeholder = `${limitsInfo.default[name]} (max ${maxima[name]})`;
    }
    await init();
  }

  async function init() {
    try {
      await loadLanguages();
      restore();
      setStatus("Ready.", "ready");
    } catch (err) {
      setStatus(`Languages could not be loaded (${err.message}). An API key may be needed.`, "error");
      $("key-box").open = true;
    }
  }

  start();
})();
