/*
 * crashkit's sync shim: makes sync(2) and syncfs(2) visible to the FUSE recorder
 * (crashkit.faults.real), loaded into the recorded program with LD_PRELOAD.
 *
 * Why: the kernel sends a FUSE daemon nothing for sync(2) or syncfs(2) (only
 * virtiofs gets FUSE_SYNCFS), so a program that makes its files durable that way
 * would look as if it never synced. The shim wraps both: it runs the real call
 * first (which writes back dirty mmap pages, so they reach the recorder before the
 * sync does), then opens and closes $CRASHKIT_SYNC_PATH, a reserved name on the mount
 * that the recorder answers by recording one `sync` (the name never exists on disk).
 * syncfs(fd) is told only when fd is on the mount. errno is left as the real call
 * left it. A statically linked program, or one that makes the system call itself,
 * is not seen.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void tell_recorder(void)
{
    const char *path = getenv("CRASHKIT_SYNC_PATH");
    if (path == NULL || *path == '\0')
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
}

void sync(void)
{
    void (*real)(void) = (void (*)(void))dlsym(RTLD_NEXT, "sync");
    int saved;
    if (real != NULL)
        real();
    saved = errno;
    tell_recorder();
    errno = saved;
}

int syncfs(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
    const char *path = getenv("CRASHKIT_SYNC_PATH");
    struct stat file, mount;
    int rc, saved;
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    rc = real(fd);
    saved = errno;
    if (rc == 0 && path != NULL && fstat(fd, &file) == 0 && stat(path, &mount) == 0
        && file.st_dev == mount.st_dev)
        tell_recorder();
    errno = saved;
    return rc;
}
