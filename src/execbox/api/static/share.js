// Share links: the program's state as base64url of its JSON, in the URL fragment (the
// fragment never reaches a server, so a shared program is not logged anywhere).
"use strict";
window.execboxShare = (function () {
  function encode(state) {
    const bytes = new TextEncoder().encode(JSON.stringify(state));
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decode(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "===".slice((b64.length + 3) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const state = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof state !== "object" || state === null) throw new Error("not a program");
    return {
      language: typeof state.language === "string" ? state.language : "",
      code: typeof state.code === "string" ? state.code : "",
      stdin: typeof state.stdin === "string" ? state.stdin : "",
      args: Array.isArray(state.args) ? state.args.filter((a) => typeof a === "string") : [],
    };
  }

  return { encode, decode };
})();
