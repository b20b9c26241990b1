/* An LD_PRELOAD shim for tests/http.rs: while the file named by
 * $HELD_RECOVERY_FLAG exists, opening a binlog file ("binlog.N") waits
 * (at most 30 s), so a test can look at the HTTP port in the middle of
 * recovery. Everything else passes through. Built by the test with cc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void hold(const char *path) {
    const char *flag = getenv("HELD_RECOVERY_FLAG");
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!flag || strncmp(base, "binlog.", 7) != 0) return;
    struct stat st;
    for (int i = 0; i < 3000 && stat(flag, &st) == 0; i++) usleep(10000);
}

#define WRAP(name, ...)                                                   \
    int name(const char *path, int flags, ...) {                         \
        static int (*real)(const char *, int, ...);                      \
        if (!real) real = dlsym(RTLD_NEXT, #name);                       \
        mode_t mode = 0;                                                  \
        if (flags & (O_CREAT | O_TMPFILE)) {                              \
            va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); \
        }                                                                 \
        hold(path);                                                       \
        return real(path, flags, mode);                                   \
    }
WRAP(open)
WRAP(open64)

int openat(int dirfd, const char *path, int flags, ...) {
    static int (*real)(int, const char *, int, ...);
    if (!real) real = dlsym(RTLD_NEXT, "openat");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap);
    }
    hold(path);
    return real(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    static int (*real)(int, const char *, int, ...);
    if (!real) real = dlsym(RTLD_NEXT, "openat64");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap);
    }
    hold(path);
    return real(dirfd, path, flags, mode);
}
