/*
 * loopback-only: run a command only in a network namespace that has no interface but `lo`.
 *
 *     loopback-only PROGRAM [ARGS...]
 *
 * The Swarm executor (swarm_isolation = "nodes") makes this the entrypoint of every task that
 * gets no network: such a task is isolated only on a node whose dockerd runs with
 * `--bridge none`, and this check is what makes a wrongly configured node refuse the cell
 * instead of running it with the outside world in reach. It reads /proc/net/dev (which lists
 * the interfaces of the reader's network namespace), refuses with exit status 125 unless that
 * lists `lo` and nothing else, and then executes PROGRAM, found through PATH like `docker run`
 * finds a command.
 *
 * It is a static program without a C library (raw system calls, x86-64 and AArch64), so that
 * it runs in any image, reads no environment variable but PATH, loads nothing, and fits in a
 * Swarm config (500 KiB at most). Build: python -m dockyter.server.swarm.loopbackcheck OUT
 */

typedef unsigned long size_t;

#define AT_FDCWD (-100)
#define O_RDONLY_CLOEXEC 02000000
#define ENOENT 2
#define EACCES 13

#if defined(__x86_64__)
#define SYS_READ 0
#define SYS_WRITE 1
#define SYS_CLOSE 3
#define SYS_EXECVE 59
#define SYS_EXIT_GROUP 231
#define SYS_OPENAT 257

static long syscall4(long number, long a, long b, long c, long d)
{
    long result;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(result)
                     : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return result;
}

/* The kernel starts us with argc, argv and envp on the stack; pass its address on. */
__asm__(".text\n.globl _start\n_start:\n"
        "  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call start\n  hlt\n");

#elif defined(__aarch64__)
#define SYS_READ 63
#define SYS_WRITE 64
#define SYS_CLOSE 57
#define SYS_EXECVE 221
#define SYS_EXIT_GROUP 94
#define SYS_OPENAT 56

static long syscall4(long number, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = number;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}

__asm__(".text\n.globl _start\n_start:\n  mov x0, sp\n  bl start\n");

#else
#error "loopback-only supports x86-64 and AArch64"
#endif

static size_t length(const char *text)
{
    size_t n = 0;
    while (text[n])
        n++;
    return n;
}

static void say(const char *text)
{
    syscall4(SYS_WRITE, 2, (long)text, (long)length(text), 0);
}

static void __attribute__((noreturn)) leave(int status)
{
    for (;;)
        syscall4(SYS_EXIT_GROUP, status, 0, 0, 0);
}

static void __attribute__((noreturn)) refuse(const char *why, const char *name)
{
    say("dockyter: the cell was not run: ");
    say(why);
    if (name) {
        say(name);
        say(" besides lo: this task's node gives a container without a network a default bridge. "
            "The server's swarm_isolation = \"nodes\" needs every node's dockerd run with --bridge none");
    }
    say("\n");
    leave(125);
}

static char listing[65536];

/* Refuse unless /proc/net/dev lists `lo` and no other interface. */
static void check_interfaces(void)
{
    long fd = syscall4(SYS_OPENAT, AT_FDCWD, (long)"/proc/net/dev", O_RDONLY_CLOEXEC, 0);
    if (fd < 0)
        refuse("cannot read /proc/net/dev, so its network interfaces cannot be checked", 0);
    size_t size = 0;
    for (;;) {
        long got = syscall4(SYS_READ, fd, (long)(listing + size), (long)(sizeof listing - 1 - size), 0);
        if (got < 0)
            refuse("cannot read /proc/net/dev, so its network interfaces cannot be checked", 0);
        if (got == 0)
            break;
        size += (size_t)got;
        if (size == sizeof listing - 1)
            refuse("this task lists more network interfaces than lo", 0);
    }
    syscall4(SYS_CLOSE, fd, 0, 0, 0);
    listing[size] = 0;

    int line = 0, loopback = 0;
    char *cursor = listing;
    while (*cursor) {
        char *end = cursor;
        while (*end && *end != '\n')
            end++;
        char *next = *end ? end + 1 : end;
        *end = 0;
        if (++line > 2 && cursor != end) { /* two header lines, then one interface per line */
            while (*cursor == ' ')
                cursor++;
            char *colon = cursor;
            while (*colon && *colon != ':')
                colon++;
            if (!*colon)
                refuse("/proc/net/dev has a line this check does not understand", 0);
            *colon = 0;
            if (cursor[0] == 'l' && cursor[1] == 'o' && cursor[2] == 0)
                loopback = 1;
            else
                refuse("this task has the network interface ", cursor);
        }
        cursor = next;
    }
    if (!loopback)
        refuse("/proc/net/dev lists no loopback interface, so this is not the namespace it should be", 0);
}

static char candidate[4096];

/* execve PROGRAM as found through PATH (docker's default PATH when there is none); returns the error. */
static long execute(char **argv, char **envp)
{
    const char *program = argv[0];
    for (const char *c = program; *c; c++)
        if (*c == '/')
            return syscall4(SYS_EXECVE, (long)program, (long)argv, (long)envp, 0);
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (char **env = envp; *env; env++) {
        const char *e = *env;
        if (e[0] == 'P' && e[1] == 'A' && e[2] == 'T' && e[3] == 'H' && e[4] == '=')
            path = e + 5;
    }
    long error = -ENOENT;
    size_t name_length = length(program);
    while (1) {
        const char *stop = path;
        while (*stop && *stop != ':')
            stop++;
        size_t dir_length = (size_t)(stop - path);
        if (dir_length == 0) { /* an empty PATH entry is the working directory */
            path = ".";
            dir_length = 1;
        }
        if (dir_length + 1 + name_length < sizeof candidate) {
            size_t n = 0;
            for (size_t i = 0; i < dir_length; i++)
                candidate[n++] = path[i];
            candidate[n++] = '/';
            for (size_t i = 0; i <= name_length; i++)
                candidate[n++] = program[i];
            long result = syscall4(SYS_EXECVE, (long)candidate, (long)argv, (long)envp, 0);
            if (result == -EACCES)
                error = result; /* found but not executable: say so, unless a later entry runs */
        }
        if (!*stop)
            return error;
        path = stop + 1;
    }
}

void __attribute__((noreturn, used)) start(long *stack)
{
    long argc = stack[0];
    char **argv = (char **)(stack + 1);
    char **envp = argv + argc + 1;
    if (argc < 2) {
        say("usage: loopback-only PROGRAM [ARGS...]\n");
        leave(125);
    }
    check_interfaces();
    long error = execute(argv + 1, envp);
    say("dockyter: cannot run ");
    say(argv[1]);
    say(error == -EACCES ? ": permission denied\n" : ": not found in this image\n");
    leave(error == -EACCES ? 126 : 127);
}
