/* execbox's native-sandbox helper: two small roles that must not cost a shell or a Python fork.
 *
 *   execbox-helper drop UID PROGRAM [ARG...]
 *       (host) become UID (gid UID, no supplementary groups) and exec PROGRAM (bwrap). The
 *       service can then spawn with vfork instead of a fork of its whole address space.
 *   execbox-helper stub FD STATUS_FD
 *       (inside the sandbox) wait for the run's words on FD, NUL-separated: soft and hard CPU
 *       seconds, file size KiB, stack KiB, whether stderr joins stdout (1/0), then argv. Lower
 *       the rlimits (setting another uid's limits from the host would need CAP_SYS_RESOURCE),
 *       start the program, and write its wait status on STATUS_FD the moment it ends: the host
 *       then has its result without waiting for the sandbox's teardown.
 *
 * Exit codes: 125 = the helper failed (the host reports it as a sandbox failure, by the
 * "stub:" prefix); 126/127 = the program could not be executed / was not found, as a shell.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORDS_BYTES (16 << 20)
#define FIXED_WORDS 5

static int fail(const char *role, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", role, what, strerror(errno));
    return 125;
}

static int parse_number(const char *text, unsigned long long *value) {
    char *end;
    if (text[0] < '0' || text[0] > '9') return 0; /* strtoull would take "-1" or " 1" */
    errno = 0;
    *value = strtoull(text, &end, 10);
    return errno == 0 && end != text && *end == '\0';
}

static int drop(int argc, char **argv) {
    unsigned long long uid;
    if (argc < 4 || !parse_number(argv[2], &uid) || uid == 0 || uid >= (uid_t)-1) {
        fprintf(stderr, "execbox-helper: usage: drop UID PROGRAM [ARG...]\n");
        return 125;
    }
    if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)
        return fail("execbox-helper", "dropping to the sandbox uid");
    if (getuid() != uid || geteuid() != uid || getegid() != uid)
        return fail("execbox-helper", "the uid did not change");
    execv(argv[3], argv + 3);
    return fail("execbox-helper", argv[3]);
}

static char *read_all(int fd, size_t *size) {
    size_t capacity = 4096, used = 0;
    char *data = malloc(capacity);
    for (;;) {
        if (data == NULL) return NULL;
        if (used == capacity) {
            if (capacity >= MAX_WORDS_BYTES) { errno = E2BIG; free(data); return NULL; }
            capacity *= 2;
            data = realloc(data, capacity);
            continue;
        }
        ssize_t got = read(fd, data + used, capacity - used);
        if (got == 0) break;
        if (got < 0) {
            if (errno == EINTR) continue;
            free(data);
            return NULL;
        }
        used += got;
    }
    *size = used;
    return data;
}

static int set_limit(int resource, rlim_t soft, rlim_t hard) {
    struct rlimit limit = {soft, hard};
    return setrlimit(resource, &limit);
}

/* Every signal's default action for the program, whatever the service inherited and ignores
 * (ignored signals survive exec). The raw call also reaches glibc's reserved signals. */
static void reset_signals(void) {
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        unsigned long mask;
    } action = {SIG_DFL, 0, NULL, 0};
    for (int number = 1; number <= 64; number++)
        if (number != SIGKILL && number != SIGSTOP)
            syscall(SYS_rt_sigaction, number, &action, NULL, sizeof action.mask);
}

static int stub(int argc, char **argv) {
    unsigned long long fd, status_fd;
    if (argc != 4 || !parse_number(argv[2], &fd) || !parse_number(argv[3], &status_fd)) {
        fprintf(stderr, "stub: usage: stub FD STATUS_FD\n");
        return 125;
    }
    size_t size;
    char *data = read_all((int)fd, &size);
    if (data == NULL) return fail("stub", "reading the command");
    close((int)fd);
    if (size == 0 || data[size - 1] != '\0') {
        fprintf(stderr, "stub: no command\n");
        return 125;
    }
    size_t count = 0;
    for (size_t i = 0; i < size; i++) count += data[i] == '\0';
    char **words = calloc(count + 1, sizeof(char *));
    if (words == NULL) return fail("stub", "reading the command");
    char *word = data;
    for (size_t i = 0; i < count; i++) {
        words[i] = word;
        word += strlen(word) + 1;
    }
    unsigned long long cpu_soft, cpu_hard, file_kib, stack_kib;
    if (count <= FIXED_WORDS || !parse_number(words[0], &cpu_soft) ||
        !parse_number(words[1], &cpu_hard) || !parse_number(words[2], &file_kib) ||
        !parse_number(words[3], &stack_kib)) {
        fprintf(stderr, "stub: malformed command\n");
        return 125;
    }
    if (set_limit(RLIMIT_CPU, cpu_soft, cpu_hard) != 0 ||
        set_limit(RLIMIT_FSIZE, file_kib * 1024, file_kib * 1024) != 0 ||
        set_limit(RLIMIT_STACK, stack_kib * 1024, stack_kib * 1024) != 0 ||
        set_limit(RLIMIT_CORE, 0, 0) != 0 || set_limit(RLIMIT_NOFILE, 1024, 1024) != 0)
        return fail("stub", "setting limits");
    if (strcmp(words[4], "1") == 0 && dup2(1, 2) != 2) return fail("stub", "joining stderr to stdout");
    /* Signals sent to the run's processes (an interactive client's) are for the program. */
    sigset_t all, before;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &before);
    pid_t child = fork();
    if (child < 0) return fail("stub", "starting the program");
    if (child == 0) {
        close((int)status_fd);
        reset_signals();
        sigprocmask(SIG_SETMASK, &before, NULL);
        char **program = words + FIXED_WORDS;
        execvp(program[0], program);
        int code = errno == ENOENT ? 127 : 126;
        fprintf(stderr, "%s: %s\n", program[0], strerror(errno));
        _exit(code);
    }
    /* The stub is the sandbox's pid 1 (bwrap --as-pid-1): orphans come to it, and are reaped
     * here too, until the program itself ends. */
    int status;
    for (;;) {
        pid_t ended = waitpid(-1, &status, 0);
        if (ended == child) break;
        if (ended < 0 && errno != EINTR) return fail("stub", "waiting for the program");
    }
    dprintf((int)status_fd, "%d\n", status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "drop") == 0) return drop(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "stub") == 0) return stub(argc, argv);
    fprintf(stderr, "execbox-helper: usage: drop UID PROGRAM [ARG...] | stub FD STATUS_FD\n");
    return 125;
}
