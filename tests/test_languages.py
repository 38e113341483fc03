"""Every language: hello world, stdin, args, errors with their messages, exact bytes."""

from __future__ import annotations

import base64

import httpx
import pytest
from conftest import Server

# Every test here runs against both sandbox backends.
BACKENDS = ("native", "docker")

ASM_ECHO = """\
; Read one line of stdin, print it reversed, then each argument on its own line.
global _start
section .bss
buf: resb 4096
section .text
_start:
    xor eax, eax            ; read(0, buf, 4096)
    xor edi, edi
    lea rsi, [rel buf]
    mov edx, 4096
    syscall
    lea rbx, [rel buf]
    xor ecx, ecx            ; line length: up to the newline
.len:
    cmp rcx, rax
    jge .rev
    cmp byte [rbx + rcx], 10
    je .rev
    inc rcx
    jmp .len
.rev:
    mov r12, rcx            ; reverse buf[0..len) in place
    xor esi, esi
    lea rdi, [rcx - 1]
.swap:
    cmp rsi, rdi
    jge .print
    mov al, [rbx + rsi]
    mov dl, [rbx + rdi]
    mov [rbx + rsi], dl
    mov [rbx + rdi], al
    inc rsi
    dec rdi
    jmp .swap
.print:
    mov byte [rbx + r12], 10
    lea rdx, [r12 + 1]
    mov rsi, rbx
    call write
    mov r13, [rsp]          ; argc, then argv[1..]
    mov r14, 1
.args:
    cmp r14, r13
    jge .exit
    mov rsi, [rsp + 8 + r14 * 8]
    xor edx, edx
.strlen:
    cmp byte [rsi + rdx], 0
    je .out
    inc rdx
    jmp .strlen
.out:
    mov byte [rsi + rdx], 10
    inc rdx
    call write
    inc r14
    jmp .args
.exit:
    mov eax, 60
    xor edi, edi
    syscall
write:                      ; write(1, rsi, rdx)
    mov eax, 1
    mov edi, 1
    syscall
    ret
"""

HELLO = {
    "python": 'print("Hello world!")',
    "bash": 'echo "Hello world!"',
    "javascript": 'console.log("Hello world!")',
    "go": 'package main\nimport "fmt"\nfunc main() { fmt.Println("Hello world!") }\n',
    "java": "public class Main { public static void main(String[] a) {\n"
    '  System.out.println("Hello world!"); } }\n',
    "rust": 'fn main() { println!("Hello world!"); }\n',
    "c++": '#include <iostream>\nint main() { std::cout << "Hello world!" << std::endl; }\n',
    "c": '#include <stdio.h>\nint main(void) { puts("Hello world!"); return 0; }\n',
    "ruby": 'puts "Hello world!"',
    "php": '<?php\necho "Hello world!\\n";\n',
    "perl": 'print "Hello world!\\n";',
    "lua": 'print("Hello world!")',
    "sqlite3": "SELECT 'Hello world!';",
    "typescript": 'const greeting: string = "Hello world!";\nconsole.log(greeting);\n',
    "nasm": "global _start\nsection .data\nmsg: db 'Hello world!', 10\nsection .text\n_start:\n"
    " mov eax, 1\n mov edi, 1\n lea rsi, [rel msg]\n mov edx, 13\n syscall\n"
    " mov eax, 60\n xor edi, edi\n syscall\n",
    "tcl": 'puts "Hello world!"',
    "pypy": 'print("Hello world!")',
}

# Read one line of stdin and print it reversed, then the arguments, one per line.
ECHO = {
    "python": "import sys\nprint(input()[::-1])\nfor a in sys.argv[1:]: print(a)\n",
    "bash": 'read -r line\nr=""\nfor ((i=${#line}-1; i>=0; i--)); do r+="${line:i:1}"; done\n'
    'echo "$r"\nfor a in "$@"; do echo "$a"; done\n',
    "javascript": "const l = require('fs').readFileSync(0, 'utf8').split('\\n')[0];\n"
    "console.log([...l].reverse().join(''));\nprocess.argv.slice(2).forEach(a => console.log(a));\n",
    "go": 'package main\nimport ("bufio"; "fmt"; "os")\nfunc main() {\n'
    " s, _ := bufio.NewReader(os.Stdin).ReadString('\\n')\n r := []rune(s[:len(s)-1])\n"
    " for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 { r[i], r[j] = r[j], r[i] }\n"
    " fmt.Println(string(r))\n for _, a := range os.Args[1:] { fmt.Println(a) }\n}\n",
    "java": "import java.util.*;\npublic class Main { public static void main(String[] a) {\n"
    " String l = new Scanner(System.in).nextLine();\n"
    " System.out.println(new StringBuilder(l).reverse());\n"
    " for (String s : a) System.out.println(s); } }\n",
    "rust": "use std::io::BufRead;\nfn main() {\n"
    " let l = std::io::stdin().lock().lines().next().unwrap().unwrap();\n"
    ' println!("{}", l.chars().rev().collect::<String>());\n'
    ' for a in std::env::args().skip(1) { println!("{}", a); }\n}\n',
    "c++": "#include <bits/stdc++.h>\nint main(int n, char** v) { std::string l;\n"
    " std::getline(std::cin, l); std::reverse(l.begin(), l.end());\n"
    " std::cout << l << '\\n'; for (int i = 1; i < n; i++) std::cout << v[i] << '\\n'; }\n",
    "c": "#include <stdio.h>\n#include <string.h>\nint main(int n, char** v) { char l[100];\n"
    ' fgets(l, sizeof l, stdin); l[strcspn(l, "\\n")] = 0;\n'
    " for (int i = strlen(l) - 1; i >= 0; i--) putchar(l[i]); putchar('\\n');\n"
    " for (int i = 1; i < n; i++) puts(v[i]); }\n",
    "ruby": "puts $stdin.gets.chomp.reverse\nARGV.each { |a| puts a }\n",
    "php": '<?php\necho strrev(rtrim(fgets(STDIN), "\\n")), "\\n";\n'
    'foreach (array_slice($argv, 1) as $a) echo $a, "\\n";\n',
    "perl": 'my $l = <STDIN>; chomp $l;\nprint scalar reverse($l), "\\n";\nprint "$_\\n" for @ARGV;\n',
    "lua": "print(io.read('l'):reverse())\nfor _, a in ipairs(arg) do print(a) end\n",
    # stdin through .import; the args are bound as ?1, ?2... (temp.sqlite_parameters).
    "sqlite3": "CREATE TABLE input(line TEXT);\n.import '|cat' input\n"
    "WITH RECURSIVE r(i, s) AS (SELECT length(line), '' FROM input\n"
    "  UNION ALL SELECT i - 1, s || substr((SELECT line FROM input), i, 1) FROM r WHERE i > 0)\n"
    "SELECT s FROM r WHERE i = 0;\nSELECT value FROM temp.sqlite_parameters ORDER BY key;\n",
    "typescript": "const line: string = require('fs').readFileSync(0, 'utf8').split('\\n')[0];\n"
    "console.log([...line].reverse().join(''));\n"
    "process.argv.slice(2).forEach((a: string) => console.log(a));\n",
    "nasm": ASM_ECHO,
    "tcl": "puts [string reverse [gets stdin]]\nforeach a $argv { puts $a }\n",
    "pypy": "import sys\nprint(input()[::-1])\nfor a in sys.argv[1:]: print(a)\n",
}

# A runtime error, and the text (or texts) the message must contain.
CRASH = {
    "python": ("x = 1\nraise ValueError('boom')\n", "ValueError: boom"),
    "bash": ("echo out\necho boom >&2\nexit 3\n", "boom"),
    "javascript": ("throw new Error('boom')\n", "Error: boom"),
    # Binaries are built without symbol tables or debug info: panics still say where.
    "go": ('package main\nfunc main() { panic("boom") }\n', "main.main()\n\t/box/main.go:2"),
    "java": (
        "public class Main { public static void main(String[] a) {\n"
        ' throw new RuntimeException("boom"); } }\n',
        "RuntimeException: boom",
    ),
    "rust": ('fn main() { panic!("boom"); }\n', ("boom", "main.rs:1:13")),
    "c++": ('#include <stdexcept>\nint main() { throw std::runtime_error("boom"); }\n', "boom"),
    "c": ('#include <stdio.h>\nint main(void) { fprintf(stderr, "boom\\n"); return 3; }\n', "boom"),
    "ruby": ("x = 1\nraise 'boom'\n", ("main.rb:2", "boom (RuntimeError)")),
    "php": ("<?php\nthrow new Exception('boom');\n", ("Uncaught Exception: boom", "main.php:2")),
    "perl": ('my $x = 1;\ndie "boom";\n', "boom at main.pl line 2."),
    "lua": ("local x = 1\nerror('boom')\n", "main.lua:2: boom"),
    "sqlite3": ("SELECT 1;\nSELECT * FROM no_such_table;\n", "no such table: no_such_table"),
    "typescript": (
        "const x: number = 1;\nthrow new Error('boom');\n",
        ("Error: boom", "main.js:2"),
    ),
    # write(2, "boom\n", 5); exit(3)
    "nasm": (
        "global _start\nsection .data\nmsg: db 'boom', 10\nsection .text\n_start:\n"
        " mov eax, 1\n mov edi, 2\n lea rsi, [rel msg]\n mov edx, 5\n syscall\n"
        " mov eax, 60\n mov edi, 3\n syscall\n",
        "boom",
    ),
    "tcl": ("set x 1\nerror boom\n", ("boom", "line 2")),
    "pypy": ("x = 1\nraise ValueError('boom')\n", ("ValueError: boom", "line 2")),
}

# A compile error on line 2, and what the compiler's message must contain.
COMPILE_ERROR = {
    "go": ("package main\nfunc main() { undefined_thing() }\n", "main.go:2"),
    "java": (
        'public class Main {\n public static void main(String[] a) { int x = "s"; } }\n',
        "Main.java:2",
    ),
    "rust": ('fn main() {\n let x: i32 = "s"; }\n', "main.rs:2"),
    "c++": ("int main() {\n return undefined_thing; }\n", "main.cpp:2"),
    "c": ("int main(void) {\n return undefined_thing; }\n", "main.c:2"),
    "typescript": ('let x: number = 1;\nx = "s";\n', "main.ts(2,"),
    "nasm": ("section .text\n no_such_instruction eax\n", "main.asm:2:"),
}

# Clang compiles the same programs as GCC.
for table in (HELLO, ECHO, CRASH, COMPILE_ERROR):
    table["clang"], table["clang++"] = table["c"], table["c++"]

LANGUAGES = list(HELLO)

# The Judge0 CE ids a Judge0 client sends for them.
JUDGE0_IDS = {
    "python": 71,
    "bash": 46,
    "javascript": 63,
    "go": 60,
    "java": 62,
    "rust": 73,
    "c++": 54,
    "c": 50,
    "ruby": 72,
    "php": 68,
    "perl": 85,
    "lua": 64,
    "sqlite3": 82,
    "clang": 75,
    "clang++": 76,
    "typescript": 74,
    "nasm": 45,
}

ECHOED = "dlrow olleh\none\ntwo words\n-x\n"


def test_every_language_is_listed_and_available(client):
    listed = {item["language"]: item for item in client.get("/api/v1/languages").json()}
    assert set(LANGUAGES) <= set(listed)
    for name in LANGUAGES:
        assert listed[name]["available"], listed[name]
        assert listed[name]["version"][0].isdigit()
    assert listed["python"]["compiled"] is False
    assert listed["rust"]["compiled"] is True


@pytest.mark.parametrize("language", LANGUAGES)
def test_hello_world(run, language):
    body = run(language, HELLO[language])
    assert body["status"] == "ok", body
    assert body["run"]["stdout"] == "Hello world!\n"
    assert body["run"]["exit_code"] == 0
    assert body["run"]["wall_time_ms"] > 0
    assert body["run"]["memory_bytes"] > 0
    assert (body["compile"] is not None) == (language in COMPILE_ERROR)


@pytest.mark.parametrize("language", LANGUAGES)
def test_stdin_and_args(run, language):
    body = run(language, ECHO[language], stdin="hello world\n", args=["one", "two words", "-x"])
    assert body["status"] == "ok", body
    assert body["run"]["stdout"] == "dlrow olleh\none\ntwo words\n-x\n"


@pytest.mark.parametrize("language", LANGUAGES)
def test_piston_runs_every_language(client, language):
    body = client.post(
        "/api/v2/execute",
        json={
            "language": language,
            "version": "*",
            "files": [{"content": ECHO[language]}],
            "stdin": "hello world\n",
            "args": ["one", "two words", "-x"],
        },
    ).json()
    assert body["language"] == language, body
    assert body["run"]["stdout"] == ECHOED, body
    assert body["run"]["code"] == 0


@pytest.mark.parametrize("language", list(JUDGE0_IDS))
def test_judge0_ids_run_every_language(client, backend, language):
    # Go's 1.3 MB binary is above Judge0's default max_file_size (1 MB): the limit is the
    # program's, not what bounds putting its files in place (it did on Docker).
    def submit(source: str, **fields) -> dict:
        fields = {"language_id": JUDGE0_IDS[language], "source_code": source, **fields}
        return client.post("/submissions?wait=true", json=fields).json()

    echoed = submit(
        ECHO[language], stdin="hello world\n", command_line_arguments="one 'two words' -x"
    )
    assert echoed["status"]["description"] == "Accepted", echoed
    assert echoed["stdout"] == ECHOED
    crashed = submit(CRASH[language][0])
    assert crashed["status"]["description"].startswith("Runtime Error"), crashed
    assert "boom" in crashed["stderr"] or "no such table" in crashed["stderr"]
    if language in COMPILE_ERROR:
        broken = submit(COMPILE_ERROR[language][0])
        assert broken["status"]["description"] == "Compilation Error", broken
        assert ":2" in broken["compile_output"] or "(2," in broken["compile_output"], broken


def test_judge0_lists_each_language_with_its_installed_version(client):
    listed = {item["id"]: item["name"] for item in client.get("/languages").json()}
    versions = {x["language"]: x["version"] for x in client.get("/api/v1/languages").json()}
    assert listed[72] == f"Ruby ({versions['ruby']})"
    assert listed[75] == f"C (Clang {versions['clang']})"
    assert listed[82] == f"SQL (SQLite {versions['sqlite3']})"
    assert listed[45] == f"Assembly (NASM {versions['nasm']})"


def test_unicode_stdin_round_trips(run):
    body = run("python", "import sys; sys.stdout.write(sys.stdin.read())", stdin="héllo wörld ✓\n")
    assert body["run"]["stdout"] == "héllo wörld ✓\n"


def test_large_stdin_echoed_without_deadlock(run):
    data = "x" * 2_000_000
    code = "import sys; sys.stdout.write(sys.stdin.read())"
    body = run("python", code, stdin=data, limits={"output_bytes": 4_000_000})
    assert body["status"] == "ok"
    assert body["run"]["stdout"] == data


@pytest.mark.parametrize("language", LANGUAGES)
def test_runtime_error_reports_message(run, language):
    code, expected = CRASH[language]
    body = run(language, code)
    assert body["status"] == "runtime_error", body
    assert body["run"]["exit_code"] != 0 or body["run"]["signal"] is not None
    for text in expected if isinstance(expected, tuple) else (expected,):
        assert text in body["run"]["stderr"]


@pytest.mark.parametrize("language", list(COMPILE_ERROR))
def test_compile_error_has_line_number(run, language):
    code, expected = COMPILE_ERROR[language]
    body = run(language, code)
    assert body["status"] == "compile_error", body
    assert body["run"] is None
    compile_ = body["compile"]
    assert compile_["status"] == "compile_error"
    assert expected in compile_["stdout"] + compile_["stderr"]


def test_python_syntax_error_is_a_runtime_error_with_line(run):
    body = run("python", "x = 1\ndef f(:\n")
    assert body["status"] == "runtime_error"
    assert "line 2" in body["run"]["stderr"] and "SyntaxError" in body["run"]["stderr"]


def test_output_is_byte_exact(run):
    body = run("python", "import sys; sys.stdout.write('  a\\r\\n\\tb  ')")
    assert body["run"]["stdout"] == "  a\r\n\tb  "


def test_binary_output_in_base64(run):
    code = "import sys; sys.stdout.buffer.write(bytes(range(256)))"
    body = run("python", code, output_encoding="base64")
    assert body["run"]["encoding"] == "base64"
    assert base64.b64decode(body["run"]["stdout"]) == bytes(range(256))


def test_invalid_utf8_is_replaced_not_an_error(run):
    body = run("python", "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe end')")
    assert body["status"] == "ok"
    assert body["run"]["stdout"] == "ok \ufffd\ufffd end"


def test_stdout_and_stderr_are_separate(run):
    body = run("bash", "echo out; echo err >&2")
    assert body["run"]["stdout"] == "out\n"
    assert body["run"]["stderr"] == "err\n"


def test_aliases(run):
    for alias, language in [
        ("py", "python"),
        ("js", "javascript"),
        ("golang", "go"),
        ("sh", "bash"),
        ("cpp", "c++"),
        ("rs", "rust"),
        ("Python3", "python"),
    ]:
        body = run(alias, HELLO[language])
        assert body["language"] == language
        assert body["run"]["stdout"] == "Hello world!\n"


def test_multiple_files(client):
    files = [
        {"name": "main.py", "content": "from lib.util import greet\nprint(greet())"},
        {"name": "lib/__init__.py", "content": ""},
        {"name": "lib/util.py", "content": "def greet():\n    return open('data.txt').read()"},
        {
            "name": "data.txt",
            "content": base64.b64encode(b"from a file").decode(),
            "encoding": "base64",
        },
    ]
    body = client.post("/api/v1/execute", json={"language": "python", "files": files}).json()
    assert body["run"]["stdout"] == "from a file\n", body


def test_multiple_cpp_files_compile_together(client):
    files = [
        {
            "name": "main.cpp",
            "content": '#include "add.h"\n#include <cstdio>\n'
            'int main() { printf("%d\\n", add(2, 3)); }',
        },
        {"name": "add.h", "content": "int add(int a, int b);"},
        {"name": "add.cpp", "content": "int add(int a, int b) { return a + b; }"},
    ]
    body = client.post("/api/v1/execute", json={"language": "c++", "files": files}).json()
    assert body["run"]["stdout"] == "5\n", body


def test_java_file_is_named_after_its_public_class(run):
    code = (
        'public class Solution { public static void main(String[] a) { System.out.println("s"); } }'
    )
    assert run("java", code)["run"]["stdout"] == "s\n"


def test_javac_starts_from_its_class_data_archive(client, backend):
    # With -Xshare:on the JVM refuses to start unless the archive maps: the compile stage's
    # success shows the archive is there, readable in the sandbox, and valid for this JDK.
    # (Compiler options reach javac through the Judge0 API.)
    code = 'public class Main { public static void main(String[] a) { System.out.println("j"); } }'
    body = client.post(
        "/submissions?wait=true",
        json={"language_id": 62, "source_code": code, "compiler_options": "-J-Xshare:on"},
    ).json()
    if backend == "docker":  # no archive in the image: the JVM says so and stops
        assert body["status"]["description"] == "Compilation Error", body
        return
    assert body["status"]["description"] == "Accepted", body
    assert body["stdout"] == "j\n" and not body["compile_output"], body


def test_version_selection(client, run):
    version = next(
        x["version"] for x in client.get("/api/v1/languages").json() if x["language"] == "python"
    )
    major_minor = ".".join(version.split(".")[:2])
    assert run("python", "print(1)", version=major_minor)["version"] == version
    response = client.post(
        "/api/v1/execute", json={"language": "python", "version": "2.7", "code": "print(1)"}
    )
    assert response.status_code == 400
    assert "2.7" in response.json()["message"] and version in response.json()["message"]


def test_python_with_only_the_standard_library_starts_lean(run):
    # Without `site`, the builtin `exit` is not defined: that shows which start was used.
    code = (
        "import builtins, json\nfrom collections import Counter\nprint(hasattr(builtins, 'exit'))"
    )
    assert run("python", code)["run"]["stdout"] == "False\n"


def test_python_importing_other_packages_gets_site_packages(run):
    code = (
        "try:\n    import some_third_party_package\nexcept ImportError:\n    pass\n"
        "import builtins\nprint(hasattr(builtins, 'exit'))"
    )
    assert run("python", code)["run"]["stdout"] == "True\n"


def test_python_exit_builtin_still_works(run):
    body = run("python", "print('bye')\nexit(3)")
    assert body["run"]["stdout"] == "bye\n" and body["run"]["exit_code"] == 3


def test_python_local_modules_count_as_own_files(client):
    files = [
        {
            "name": "main.py",
            "content": "import helper, builtins\nprint(helper.X, hasattr(builtins, 'exit'))",
        },
        {"name": "helper.py", "content": "X = 42"},
    ]
    body = client.post("/api/v1/execute", json={"language": "python", "files": files}).json()
    assert body["run"]["stdout"] == "42 False\n"


def test_a_missing_toolchain_is_listed_with_the_command_that_installs_it(tmp_path):
    data = tmp_path / "languages.toml"
    data.write_text(
        '[cobol]\ninstall = "gnucobol"\nentry = "main.cob"\n'
        'discover.cobc = "command -v no-such-cobc"\nversion = ["{cobc}", "-v"]\nrun = ["./main"]\n'
        # The server is healthy only with some language available.
        '[bash]\nentry = "main.sh"\nversion = ["/bin/bash", "--version"]\nrun = ["/bin/bash", "{entry}"]\n'
    )
    server = Server(env={"EXECBOX_LANGUAGES_FILE": str(data)}).start()
    try:
        listed = httpx.get(server.url + "/api/v1/languages").json()[0]
    finally:
        server.stop()
    assert listed["language"] == "cobol" and not listed["available"]
    assert "apt-get install gnucobol" in listed["reason"], listed
