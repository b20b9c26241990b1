/* An LD_PRELOAD shim for tests/durability.rs: when the file named by
 * $FAILING_FSYNC_FLAG exists, the next fsync or fdatasync removes it and
 * fails with EIO, and, as a disk whose writeback failed would, loses what
 * was written to that descriptor since its last successful sync (the
 * ranges are overwritten with zeros). Everything else passes through.
 * Built by the test with cc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_RANGES 65536

struct range { int fd; off_t off; size_t len; };
static struct range ranges[MAX_RANGES];
static int nranges;
static int overflowed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void init(void) {
    if (!real_pwrite64) {
        real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
        real_fsync = dlsym(RTLD_NEXT, "fsync");
        real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    }
}

/* One failure per flag: the flag is taken as the failure happens. */
static int failing(void) {
    const char *flag = getenv("FAILING_FSYNC_FLAG");
    return flag && unlink(flag) == 0;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    init();
    ssize_t done = real_pwrite64(fd, buf, n, off);
    if (done > 0) {
        pthread_mutex_lock(&lock);
        if (nranges < MAX_RANGES) ranges[nranges++] = (struct range){fd, off, (size_t)done};
        else overflowed = 1;
        pthread_mutex_unlock(&lock);
    }
    return done;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    return pwrite64(fd, buf, n, off);
}

/* Forgets (and, on failure, zeroes) the ranges written to fd. */
static void settle(int fd, int lose) {
    static char zeros[65536];
    pthread_mutex_lock(&lock);
    int kept = 0;
    for (int i = 0; i < nranges; i++) {
        if (ranges[i].fd != fd) { ranges[kept++] = ranges[i]; continue; }
        for (size_t done = 0; lose && done < ranges[i].len;) {
            size_t n = ranges[i].len - done;
            if (n > sizeof zeros) n = sizeof zeros;
            ssize_t w = real_pwrite64(fd, zeros, n, ranges[i].off + (off_t)done);
            if (w <= 0) break;
            done += (size_t)w;
        }
    }
    nranges = kept;
    if (overflowed && lose) abort(); /* the test would prove nothing */
    pthread_mutex_unlock(&lock);
}

/* Fails (losing the unsynced writes) when the flag is there, else syncs. */
static int sync_with(int (*real)(int), int fd) {
    if (failing()) { settle(fd, 1); errno = EIO; return -1; }
    int r = real(fd);
    if (r == 0) settle(fd, 0);
    return r;
}

int fdatasync(int fd) { init(); return sync_with(real_fdatasync, fd); }

int fsync(int fd) { init(); return sync_with(real_fsync, fd); }
