/* An LD_PRELOAD shim for tests/replication.rs: while the file named by
 * $HELD_FSYNC_FLAG exists, fsync and fdatasync wait (polling each
 * millisecond) before doing their work: a disk that takes its time, so a
 * test can see what waits for an fsync. Built by the test with cc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void wait_while_flagged(void) {
    const char *flag = getenv("HELD_FSYNC_FLAG");
    struct timespec ms = {0, 1000000};
    while (flag && access(flag, F_OK) == 0)
        nanosleep(&ms, NULL);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real)
        real = dlsym(RTLD_NEXT, "fsync");
    wait_while_flagged();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real)
        real = dlsym(RTLD_NEXT, "fdatasync");
    wait_while_flagged();
    return real(fd);
}
