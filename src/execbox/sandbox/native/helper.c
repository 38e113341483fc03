/* execbox's native-sandbox helper: two small roles that must not cost a shell or a Python fork.
 *
 *   execbox-helper launch UID [STEP...] -- PROGRAM [ARG...]
 *       (host, as root) prepare the stage, then become UID (gid UID, no supplementary groups)
 *       and exec PROGRAM (bwrap). The steps, in the order given:
 *           mkdir DIR               make a directory (a cgroup)
 *           write FILE VALUE        write a control file (a cgroup limit)
 *           try-write FILE VALUE    the same, where a failure does not matter
 *           join FILE               write "0" to a cgroup.procs file: this process joins it, so
 *                                   bwrap and every process of the sandbox start inside
 *           tmpfs DIR OPTIONS       make DIR (0700) and mount a nosuid, nodev tmpfs on it
 *       The service spawns it with vfork and no worker thread: the whole start of a box is one
 *       process start, with no Python code between the fork and the sandbox.
 *   execbox-helper stub FD STATUS_FD
 *       (inside the sandbox) make itself non-dumpable, write "ready\n" on STATUS_FD (bwrap
 *       has finished setting up the sandbox), then wait for the run's words on FD,
 *       NUL-separated: soft and hard CPU seconds, file size KiB, stack KiB, whether stderr
 *       joins stdout (1/0), then argv. Lower the rlimits (setting another uid's limits from
 *       the host would need CAP_SYS_RESOURCE), start the program, and write its wait status
 *       on STATUS_FD the moment it ends: the host then has its result without waiting for the
 *       sandbox's teardown.
 *
 * Exit codes: 125 = the helper failed (the host reports it as a sandbox failure, by the
 * "stub:" prefix); 126/127 = the program could not be executed / was not found, as a shell.
 *
 * No C library: it runs twice for every box, and on a virtual machine a C library's start-up
 * alone costs more than everything else the helper does (glibc probes the CPU with CPUID, which
 * traps to the hypervisor: ~0.6 ms of CPU per exec measured on a Firecracker VM). Built with
 * -nostdlib -ffreestanding; the headers below are used for constants and types only.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <fcntl.h>

#define MAX_WORDS_BYTES (16 << 20)
#define FIXED_WORDS 5
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define MAX_PATH_BYTES 4096
#define READY "ready\n"

/* --- the few system calls it needs -------------------------------------------------------- */

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n"
        "  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call start\n  hlt\n");

static long sys(long number, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long result;
    __asm__ volatile("syscall"
                     : "=a"(result)
                     : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return result;
}
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n"
        "  mov x29, #0\n  mov x30, #0\n  mov x0, sp\n  and sp, x0, #-16\n  bl start\n  brk #0\n");

static long sys(long number, long a, long b, long c, long d, long e, long f) {
    register long x8 __asm__("x8") = number, x0 __asm__("x0") = a, x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c, x3 __asm__("x3") = d, x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc #0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}
#else
#error "the sandbox helper supports x86_64 and aarch64"
#endif

#define SYS0(n) sys(n, 0, 0, 0, 0, 0, 0)
#define SYS1(n, a) sys(n, (long)(a), 0, 0, 0, 0, 0)
#define SYS2(n, a, b) sys(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define SYS3(n, a, b, c) sys(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define SYS4(n, a, b, c, d) sys(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* A raw call returns -errno on failure. */
static int failed(long result) { return result < 0 && result > -4096; }

static __attribute__((noreturn)) void exit_with(int code) {
    for (;;) SYS1(SYS_exit_group, code);
}

/* The compiler may emit calls to these even without a C library. */
void *memset(void *target, int byte, size_t size) {
    unsigned char *p = target;
    while (size--) *p++ = (unsigned char)byte;
    return target;
}

void *memcpy(void *target, const void *source, size_t size) {
    unsigned char *p = target;
    const unsigned char *q = source;
    while (size--) *p++ = *q++;
    return target;
}

static size_t length(const char *text) {
    size_t n = 0;
    while (text[n]) n++;
    return n;
}

static int same(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

static int starts_with(const char *text, const char *prefix) {
    while (*prefix)
        if (*text++ != *prefix++) return 0;
    return 1;
}

/* --- messages on stderr --------------------------------------------------------------------- */

static const char *describe(long error) {
    switch (error) {
    case EPERM: return "Operation not permitted";
    case ENOENT: return "No such file or directory";
    case EEXIST: return "File exists";
    case EBUSY: return "Device or resource busy";
    case ENODEV: return "No such device";
    case ENOSPC: return "No space left on device";
    case E2BIG: return "Argument list too long";
    case ENOEXEC: return "Exec format error";
    case EBADF: return "Bad file descriptor";
    case EAGAIN: return "Resource temporarily unavailable";
    case ENOMEM: return "Cannot allocate memory";
    case EACCES: return "Permission denied";
    case ENOTDIR: return "Not a directory";
    case EISDIR: return "Is a directory";
    case EINVAL: return "Invalid argument";
    case EMFILE: return "Too many open files";
    case ETXTBSY: return "Text file busy";
    case ENAMETOOLONG: return "Name too long";
    case ELOOP: return "Too many levels of symbolic links";
    default: return "Unknown error";
    }
}

static void say(const char *const *parts) {
    char line[1024];
    size_t used = 0;
    for (; *parts; parts++)
        for (const char *p = *parts; *p && used < sizeof line - 1; p++) line[used++] = *p;
    line[used++] = '\n';
    SYS3(SYS_write, 2, line, used);
}

static int fail(const char *role, const char *what, long error) {
    say((const char *[]){role, ": ", what, ": ", describe(error), NULL});
    return 125;
}

static int usage(const char *text) {
    say((const char *[]){text, NULL});
    return 125;
}

/* --- numbers -------------------------------------------------------------------------------- */

/* Decimal digits only (no sign, no space), without overflow. */
static int parse_number(const char *text, unsigned long long *value) {
    unsigned long long n = 0;
    if (*text == '\0') return 0;
    for (; *text; text++) {
        if (*text < '0' || *text > '9') return 0;
        unsigned digit = (unsigned)(*text - '0');
        if (n > (~0ULL - digit) / 10) return 0;
        n = n * 10 + digit;
    }
    *value = n;
    return 1;
}

/* The wait status as decimal text and a newline. */
static size_t format_status(int status, char *out) {
    char digits[16];
    size_t n = 0, used = 0;
    unsigned value = status < 0 ? -(unsigned)status : (unsigned)status;
    do digits[n++] = (char)('0' + value % 10); while (value /= 10);
    if (status < 0) out[used++] = '-';
    while (n) out[used++] = digits[--n];
    out[used++] = '\n';
    return used;
}

/* --- launch ------------------------------------------------------------------------------ */

static long write_file(const char *path, const char *value) {
    long fd = SYS4(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    if (failed(fd)) return fd;
    long result = SYS3(SYS_write, fd, value, length(value));
    SYS1(SYS_close, fd);
    return failed(result) ? result : 0;
}

static int step_failed(const char *step, const char *path, long result) {
    say((const char *[]){"execbox-helper: ", step, " ", path, ": ", describe(-result), NULL});
    return 125;
}

/* Runs the steps up to "--"; returns the index of the program's argv, or -1 after a message. */
/* Whether the n words after argv[i] exist and none of them is the "--" that ends the steps. */
static int has_arguments(int argc, char **argv, int i, int n) {
    for (int k = 1; k <= n; k++)
        if (i + k >= argc || same(argv[i + k], "--")) return 0;
    return 1;
}

static int arguments_of(const char *step) {
    if (same(step, "mkdir") || same(step, "join")) return 1;
    if (same(step, "write") || same(step, "try-write") || same(step, "tmpfs")) return 2;
    return -1;
}

/* The index of the program's argv after the steps, or -1 (after a message) when the command
 * line is malformed: checked whole before any step runs. */
static int program_index(int argc, char **argv) {
    int i = 3;
    while (i < argc && !same(argv[i], "--")) {
        int arguments = arguments_of(argv[i]);
        if (arguments < 0 || !has_arguments(argc, argv, i, arguments)) {
            usage("execbox-helper: unknown or incomplete step");
            return -1;
        }
        i += 1 + arguments;
    }
    if (i + 1 >= argc) {
        usage("execbox-helper: no program after --");
        return -1;
    }
    return i + 1;
}

/* Runs the steps (well formed: see program_index); 0, or -1 after a message. */
static int run_steps(char **argv, int end) {
    for (int i = 3; i < end; i += 1 + arguments_of(argv[i])) {
        const char *step = argv[i], *path = argv[i + 1];
        long result;
        if (same(step, "mkdir")) {
            result = SYS3(SYS_mkdirat, AT_FDCWD, path, 0755);
        } else if (same(step, "write") || same(step, "try-write")) {
            result = write_file(path, argv[i + 2]);
            if (same(step, "try-write")) result = 0;
        } else if (same(step, "join")) {
            result = write_file(path, "0");
        } else {  /* tmpfs */
            result = SYS3(SYS_mkdirat, AT_FDCWD, path, 0700);
            if (!failed(result))
                result = sys(SYS_mount, (long)"execbox", (long)path, (long)"tmpfs",
                             MS_NOSUID | MS_NODEV, (long)argv[i + 2], 0);
        }
        if (failed(result)) return step_failed(step, path, result), -1;
    }
    return 0;
}

static int launch(int argc, char **argv, char **envp) {
    unsigned long long uid;
    if (argc < 5 || !parse_number(argv[2], &uid) || uid == 0 || uid >= 0xffffffffULL)
        return usage("execbox-helper: usage: launch UID [STEP...] -- PROGRAM [ARG...]");
    int program = program_index(argc, argv);
    if (program < 0 || run_steps(argv, program - 1) < 0) return 125;
    long result = SYS2(SYS_setgroups, 0, NULL);
    if (!failed(result)) result = SYS3(SYS_setresgid, uid, uid, uid);
    if (!failed(result)) result = SYS3(SYS_setresuid, uid, uid, uid);
    if (failed(result)) return fail("execbox-helper", "dropping to the sandbox uid", -result);
    if ((unsigned long long)SYS0(SYS_getuid) != uid || (unsigned long long)SYS0(SYS_geteuid) != uid ||
        (unsigned long long)SYS0(SYS_getegid) != uid)
        return fail("execbox-helper", "the uid did not change", EPERM);
    result = SYS3(SYS_execve, argv[program], argv + program, envp);
    return fail("execbox-helper", argv[program], -result);
}

/* --- stub ----------------------------------------------------------------------------------- */

/* Everything on fd up to EOF, in a lazily backed mapping (untouched pages cost nothing). */
static char *read_all(int fd, size_t *size, long *error) {
    long mapped = sys(SYS_mmap, 0, MAX_WORDS_BYTES, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (failed(mapped)) {
        *error = -mapped;
        return NULL;
    }
    char *data = (char *)mapped;
    size_t used = 0;
    for (;;) {
        if (used == MAX_WORDS_BYTES) {
            *error = E2BIG;
            return NULL;
        }
        long got = SYS3(SYS_read, fd, data + used, MAX_WORDS_BYTES - used);
        if (got == 0) break;
        if (got == -EINTR) continue;
        if (failed(got)) {
            *error = -got;
            return NULL;
        }
        used += (size_t)got;
    }
    *size = used;
    return data;
}

static long set_limit(int resource, unsigned long long soft, unsigned long long hard) {
    struct rlimit limit = {soft, hard};
    return SYS4(SYS_prlimit64, 0, resource, &limit, NULL);
}

/* Every signal's default action for the program, whatever the service inherited and ignores
 * (ignored signals survive exec), and none blocked. */
static void reset_signals(void) {
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        unsigned long mask;
    } action = {SIG_DFL, 0, NULL, 0};
    for (int number = 1; number <= 64; number++)
        if (number != SIGKILL && number != SIGSTOP)
            SYS4(SYS_rt_sigaction, number, &action, NULL, sizeof action.mask);
    unsigned long none = 0;
    SYS4(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
}

static const char *path_of(char **envp) {
    for (; *envp; envp++)
        if (starts_with(*envp, "PATH=")) return *envp + 5;
    return DEFAULT_PATH;
}

/* execve, or a script without a #! line handed to /bin/sh (as execvp does). */
static long exec_file(const char *file, char **argv, char **envp) {
    long result = SYS3(SYS_execve, file, argv, envp);
    if (result != -ENOEXEC) return result;
    size_t count = 0;
    while (argv[count]) count++;
    char *shell_argv[count + 2];
    shell_argv[0] = "/bin/sh";
    shell_argv[1] = (char *)file;
    for (size_t i = 1; i <= count; i++) shell_argv[i + 1] = argv[i];
    SYS3(SYS_execve, "/bin/sh", shell_argv, envp);
    return -ENOEXEC;
}

/* execvp: a name without a slash is looked up in PATH. Returns only on failure (-errno). */
static long exec_program(char **argv, char **envp) {
    const char *name = argv[0];
    for (const char *p = name; *p; p++)
        if (*p == '/') return exec_file(name, argv, envp);
    if (*name == '\0') return -ENOENT;
    size_t name_length = length(name);
    long error = -ENOENT;
    const char *entry = path_of(envp);
    for (;;) {
        const char *end = entry;
        while (*end && *end != ':') end++;
        size_t dir_length = (size_t)(end - entry);
        char candidate[MAX_PATH_BYTES];
        if (dir_length + name_length + 2 <= sizeof candidate) {
            size_t used = 0;
            if (dir_length == 0) candidate[used++] = '.';  /* an empty entry is the cwd */
            memcpy(candidate + used, entry, dir_length);
            used += dir_length;
            candidate[used++] = '/';
            memcpy(candidate + used, name, name_length + 1);
            long result = exec_file(candidate, argv, envp);
            if (result == -EACCES) error = result;  /* reported unless a later one runs */
            else if (result != -ENOENT && result != -ENOTDIR && result != -ESTALE &&
                     result != -ENODEV && result != -ETIMEDOUT)
                return result;
        }
        if (*end == '\0') return error;
        entry = end + 1;
    }
}

static int stub(int argc, char **argv, char **envp) {
    unsigned long long fd, status_fd;
    if (argc != 4 || !parse_number(argv[2], &fd) || !parse_number(argv[3], &status_fd))
        return usage("stub: usage: stub FD STATUS_FD");
    /* The program runs as this uid: were the stub dumpable, it could write the stub's memory
     * (/proc/1/mem) or its status pipe (/proc/1/fd) and report an end of its choosing. The
     * program's own exec makes it dumpable again (a readable binary, same uid). */
    long undumpable = SYS2(SYS_prctl, PR_SET_DUMPABLE, 0);
    if (failed(undumpable)) return fail("stub", "becoming non-dumpable", -undumpable);
    /* The sandbox is set up (bwrap execs its first program last): the host may now use it. */
    SYS3(SYS_write, status_fd, READY, length(READY));
    size_t size;
    long error = 0;
    char *data = read_all((int)fd, &size, &error);
    if (data == NULL) return fail("stub", "reading the command", error);
    SYS1(SYS_close, fd);
    if (size == 0 || data[size - 1] != '\0') return usage("stub: no command");
    size_t count = 0;
    for (size_t i = 0; i < size; i++) count += data[i] == '\0';
    long mapped = sys(SYS_mmap, 0, (long)((count + 1) * sizeof(char *)), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (failed(mapped)) return fail("stub", "reading the command", -mapped);
    char **words = (char **)mapped;  /* zero-filled: the list ends with NULL */
    char *word = data;
    for (size_t i = 0; i < count; i++) {
        words[i] = word;
        word += length(word) + 1;
    }
    unsigned long long cpu_soft, cpu_hard, file_kib, stack_kib;
    if (count <= FIXED_WORDS || !parse_number(words[0], &cpu_soft) ||
        !parse_number(words[1], &cpu_hard) || !parse_number(words[2], &file_kib) ||
        !parse_number(words[3], &stack_kib))
        return usage("stub: malformed command");
    long result = set_limit(RLIMIT_CPU, cpu_soft, cpu_hard);
    if (!failed(result)) result = set_limit(RLIMIT_FSIZE, file_kib * 1024, file_kib * 1024);
    if (!failed(result)) result = set_limit(RLIMIT_STACK, stack_kib * 1024, stack_kib * 1024);
    if (!failed(result)) result = set_limit(RLIMIT_CORE, 0, 0);
    if (!failed(result)) result = set_limit(RLIMIT_NOFILE, 1024, 1024);
    if (failed(result)) return fail("stub", "setting limits", -result);
    if (same(words[4], "1") && failed(result = SYS3(SYS_dup3, 1, 2, 0)))
        return fail("stub", "joining stderr to stdout", -result);
    /* Signals sent to the run's processes (an interactive client's) are for the program. */
    unsigned long all = ~0UL;
    SYS4(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, sizeof all);
    long child = sys(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
    if (failed(child)) return fail("stub", "starting the program", -child);
    if (child == 0) {
        SYS1(SYS_close, status_fd);
        reset_signals();
        char **program = words + FIXED_WORDS;
        result = exec_program(program, envp);
        say((const char *[]){program[0], ": ", describe(-result), NULL});
        exit_with(result == -ENOENT ? 127 : 126);
    }
    /* The stub is the sandbox's pid 1 (bwrap --as-pid-1): orphans come to it, and are reaped
     * here too, until the program itself ends. */
    int status = 0;
    for (;;) {
        long ended = SYS4(SYS_wait4, -1, &status, 0, NULL);
        if (ended == child) break;
        if (failed(ended) && ended != -EINTR) return fail("stub", "waiting for the program", -ended);
    }
    char report[24];
    SYS3(SYS_write, status_fd, report, format_status(status, report));
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* --- entry ---------------------------------------------------------------------------------- */

__attribute__((used)) void start(long *stack) {
    int argc = (int)stack[0];
    char **argv = (char **)(stack + 1);
    char **envp = argv + argc + 1;
    int code = 125;
    if (argc >= 2 && same(argv[1], "launch")) code = launch(argc, argv, envp);
    else if (argc >= 2 && same(argv[1], "stub")) code = stub(argc, argv, envp);
    else code = usage("execbox-helper: usage: launch UID [STEP...] -- PROGRAM [ARG...] | stub FD STATUS_FD");
    exit_with(code);
}
