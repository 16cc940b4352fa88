/*
 * powerloss.c -- test-only LD_PRELOAD shim that journals enough to simulate
 * a power cut for one process (tests only; never ship this).
 *
 * `kill -9` does not test fsync: the page cache survives the process, so
 * everything it wrote is still there. This shim keeps an *undo journal* of
 * every change a process makes to regular files under one directory, plus
 * a marker each time such a file is made durable. After the process was
 * SIGKILLed, the harness (tests/src/powerloss.rs, `cut_power`) replays the
 * journal backwards and throws away every change that was not durable yet.
 * The shim has no signal handling and never touches the files itself.
 *
 * Configuration (environment, read once at load time):
 *   POWERLOSS_DIR      absolute directory; only regular files whose resolved
 *                      path is under it are tracked.
 *   POWERLOSS_JOURNAL  journal file path, outside POWERLOSS_DIR. It is
 *                      opened lazily (O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC)
 *                      and appended to, never synced (it only has to
 *                      survive the death of the process, not of the host).
 * If either is unset or empty the shim is inert: every wrapper is a plain
 * pass-through to the next definition (glibc).
 *
 * Model
 *   - Before each data-changing call on a tracked fd (write, pwrite[64],
 *     writev, pwritev[64][v2], ftruncate[64], truncate[64] of a known file,
 *     fallocate[64], posix_fallocate[64], copy_file_range / sendfile[64] /
 *     splice into a tracked fd, open with O_TRUNC of an existing file) the
 *     shim appends a WRITE record holding the OLD bytes of the affected
 *     range (only the part below the current EOF: bytes past EOF do not
 *     exist) and the OLD file size. Undoing a WRITE = write the old bytes
 *     back at the offset, then truncate the file to the old size.
 *   - fsync / fdatasync of a tracked fd (on success) append a SYNC record
 *     naming the journal size *at the start* of the call: every record of
 *     that inode that starts before that position is durable. Writes that
 *     race with the fsync are not covered.
 *   - syncfs / sync (on success) append SYNC_ALL: the same for every
 *     tracked inode.
 *   - sync_file_range is NOT a durability point (on ext4 it neither commits
 *     metadata nor flushes the disk cache) and is not intercepted at all:
 *     data that was only sync_file_range'd is rolled back.
 *   - The global mutex is held across "journal + real call" for every
 *     data-changing call on a tracked fd, so the journal order is the order
 *     in which the changes hit the file and a SYNC never covers a write
 *     that was still in flight. fsync itself runs without the mutex.
 *
 * Limitations (documented, deliberate)
 *   - Namespace operations (create, rename, unlink, link, mkdir) are treated
 *     as immediately durable: rename/renameat/renameat2/unlink/unlinkat pass
 *     through. (They are intercepted only to log GONE when a tracked inode
 *     loses its last name, so that a later file reusing the inode number is
 *     not confused with the dead one.) A real power cut can lose a rename or
 *     a create whose directory was not fsynced; this shim cannot.
 *   - Writes through mmap, io_uring, stdio (fwrite: glibc calls write
 *     internally, not through the PLT), raw syscall(2), or any other path
 *     that bypasses the dynamic symbols above are not seen. Statically
 *     linked programs are not supported.
 *   - O_DIRECT is fine (old bytes are read through a separate descriptor).
 *   - One writer process per journal at a time (records of concurrent
 *     processes may interleave; each record is one writev, so they stay
 *     intact in practice, but this is not relied on).
 *   - Journal IO errors, or a tracked file that cannot be read back for its
 *     old bytes, abort() the process: a silently incomplete journal would
 *     make the simulation lie.
 *
 * Journal format (all integers little-endian; records back to back; a
 * truncated last record is what a SIGKILL mid-append leaves and is ignored):
 *
 *   header, 16 bytes:
 *     u32 magic   = 0x4a4c5750 (bytes "PWLJ")
 *     u8  type
 *     u8  flags
 *     u16 reserved (0)
 *     u32 len     bytes of body that follow the header
 *     u32 pid     of the writing process
 *   body by type:
 *     0 HEADER    u64 version (=1), then the tracked dir (canonical path
 *                 bytes, no NUL). Written when the journal is (re)opened.
 *     1 OPEN      u64 dev, u64 ino, u64 size, then path bytes (canonical,
 *                 from /proc/self/fd). size = file size when it was opened
 *                 (before any O_TRUNC); 0 for a created file.
 *                 flags: 1 = CREATED (did not exist before this open, or
 *                 O_TMPFILE), 2 = TRUNC (opened with O_TRUNC).
 *     2 WRITE     u64 dev, u64 ino, u64 offset, u64 len, u64 old_size,
 *                 then old bytes = the old content of [offset, offset +
 *                 body_len - 40), all below old_size. len is the length of
 *                 the range the call may change (informational). flags:
 *                 low 7 bits = op (1 write, 2 pwrite, 3 writev, 4 pwritev,
 *                 5 truncate, 6 fallocate, 7 open O_TRUNC, 8 copy_file_range
 *                 / sendfile / splice); 0x80 = CONTINUED (a further piece of
 *                 the previous call: old bytes are split into records of at
 *                 most 1 MiB; undo treats each piece the same way).
 *     3 SYNC      u64 dev, u64 ino, u64 covers, u64 size. covers = journal
 *                 size when the fsync started; records of this inode that
 *                 start before it are durable. size = file size then.
 *                 flags: 1 = fsync, 2 = fdatasync.
 *     4 SYNC_ALL  u64 covers: same, for every inode. flags: 1 syncfs, 2 sync.
 *     5 GONE      u64 dev, u64 ino: the inode lost its last name under the
 *                 dir (unlink / rename over it); earlier records of it are
 *                 dead, a later OPEN starts a new file. flags: 1 unlink,
 *                 2 rename.
 *
 * Build: cc -shared -fPIC -O2 -U_FORTIFY_SOURCE -o libpowerloss.so \
 *           powerloss.c -ldl -lpthread
 */
#define _GNU_SOURCE
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#ifndef FALLOC_FL_COLLAPSE_RANGE
#define FALLOC_FL_COLLAPSE_RANGE 0x08
#endif
#ifndef FALLOC_FL_ZERO_RANGE
#define FALLOC_FL_ZERO_RANGE 0x10
#endif
#ifndef FALLOC_FL_INSERT_RANGE
#define FALLOC_FL_INSERT_RANGE 0x20
#endif
#ifndef RWF_APPEND
#define RWF_APPEND 0x10
#endif
#ifndef RWF_NOAPPEND
#define RWF_NOAPPEND 0x20
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

#define PL_EXPORT __attribute__((visibility("default")))

enum { R_HEADER = 0, R_OPEN = 1, R_WRITE = 2, R_SYNC = 3, R_SYNC_ALL = 4, R_GONE = 5 };
enum { OPEN_CREATED = 1, OPEN_TRUNC = 2 };
enum {
    OP_WRITE = 1,
    OP_PWRITE = 2,
    OP_WRITEV = 3,
    OP_PWRITEV = 4,
    OP_TRUNCATE = 5,
    OP_FALLOCATE = 6,
    OP_OPEN_TRUNC = 7,
    OP_COPY = 8,
    OP_CONTINUED = 0x80,
};

#define PL_MAGIC 0x4a4c5750u
#define PL_CHUNK (1u << 20)
#define PL_MAXFD (1 << 20)

/* ---- real functions ---------------------------------------------------- */

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_creat)(const char *, mode_t);
static int (*real_creat64)(const char *, mode_t);
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);
static int (*real___openat_2)(int, const char *, int);
static int (*real___openat64_2)(int, const char *, int);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static int (*real_fcntl64)(int, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_pwritev64v2)(int, const struct iovec *, int, off_t, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_truncate)(const char *, off_t);
static int (*real_truncate64)(const char *, off_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_fallocate64)(int, int, off_t, off_t);
static int (*real_posix_fallocate)(int, off_t, off_t);
static int (*real_posix_fallocate64)(int, off_t, off_t);
static ssize_t (*real_copy_file_range)(int, off_t *, int, off_t *, size_t, unsigned int);
static ssize_t (*real_sendfile)(int, int, off_t *, size_t);
static ssize_t (*real_sendfile64)(int, int, off_t *, size_t);
static ssize_t (*real_splice)(int, off_t *, int, off_t *, size_t, unsigned int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_syncfs)(int);
static void (*real_sync)(void);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);

/* ---- state --------------------------------------------------------------- */

struct entry {
    uint64_t dev;
    uint64_t ino;
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_active;
static char g_dir[PATH_MAX];
static size_t g_dirlen;
static char g_journal[PATH_MAX];

/* Everything below is guarded by g_mu (g_fds and g_nknown are also read
 * without it, atomically, to keep untracked fds lock-free). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_jfd = -1;
static uint64_t g_jdev, g_jino;
static struct entry *g_fds[PL_MAXFD];
static struct entry *g_known;
static size_t g_nknown, g_capknown;
static unsigned char g_buf[PL_CHUNK];

/* ---- helpers ------------------------------------------------------------- */

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    if (real_write)
        (void)real_write(2, buf, (size_t)n);
    abort();
}

#define RESOLVE(name) real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name)

static void pl_prepare(void) { pthread_mutex_lock(&g_mu); }
static void pl_parent(void) { pthread_mutex_unlock(&g_mu); }
static void pl_child(void) { pthread_mutex_unlock(&g_mu); }

static void init(void)
{
    RESOLVE(open);
    RESOLVE(open64);
    RESOLVE(openat);
    RESOLVE(openat64);
    RESOLVE(creat);
    RESOLVE(creat64);
    RESOLVE(__open_2);
    RESOLVE(__open64_2);
    RESOLVE(__openat_2);
    RESOLVE(__openat64_2);
    RESOLVE(close);
    RESOLVE(dup);
    RESOLVE(dup2);
    RESOLVE(dup3);
    RESOLVE(fcntl);
    RESOLVE(fcntl64);
    RESOLVE(write);
    RESOLVE(pwrite);
    RESOLVE(pwrite64);
    RESOLVE(writev);
    RESOLVE(pwritev);
    RESOLVE(pwritev64);
    RESOLVE(pwritev2);
    RESOLVE(pwritev64v2);
    RESOLVE(ftruncate);
    RESOLVE(ftruncate64);
    RESOLVE(truncate);
    RESOLVE(truncate64);
    RESOLVE(fallocate);
    RESOLVE(fallocate64);
    RESOLVE(posix_fallocate);
    RESOLVE(posix_fallocate64);
    RESOLVE(copy_file_range);
    RESOLVE(sendfile);
    RESOLVE(sendfile64);
    RESOLVE(splice);
    RESOLVE(fsync);
    RESOLVE(fdatasync);
    RESOLVE(syncfs);
    RESOLVE(sync);
    RESOLVE(rename);
    RESOLVE(renameat);
    RESOLVE(renameat2);
    RESOLVE(unlink);
    RESOLVE(unlinkat);
    if (!real_fcntl64)
        real_fcntl64 = real_fcntl;

    const char *dir = getenv("POWERLOSS_DIR");
    const char *journal = getenv("POWERLOSS_JOURNAL");
    if (!dir || !*dir || !journal || !*journal)
        return;
    if (dir[0] != '/' || journal[0] != '/')
        die("powerloss: POWERLOSS_DIR and POWERLOSS_JOURNAL must be absolute\n");
    if (!real_open || !real_write || !real_writev || !real_fcntl || !real_close)
        die("powerloss: dlsym(RTLD_NEXT) failed\n");

    char canon[PATH_MAX];
    if (realpath(dir, canon))
        dir = canon;
    size_t n = strlen(dir);
    if (n >= sizeof g_dir)
        die("powerloss: POWERLOSS_DIR too long\n");
    memcpy(g_dir, dir, n + 1);
    while (n > 1 && g_dir[n - 1] == '/')
        g_dir[--n] = 0;
    g_dirlen = n;

    n = strlen(journal);
    if (n >= sizeof g_journal)
        die("powerloss: POWERLOSS_JOURNAL too long\n");
    memcpy(g_journal, journal, n + 1);
    /* The journal must not be under the dir (it would journal itself). */
    char jdir[PATH_MAX], jcanon[PATH_MAX];
    memcpy(jdir, g_journal, n + 1);
    char *slash = strrchr(jdir, '/');
    if (slash == jdir)
        slash[1] = 0;
    else
        *slash = 0;
    const char *jd = realpath(jdir, jcanon) ? jcanon : jdir;
    size_t jl = strlen(jd);
    if ((g_dirlen == 1) ||
        (jl >= g_dirlen && memcmp(jd, g_dir, g_dirlen) == 0 && (jd[g_dirlen] == '/' || jd[g_dirlen] == 0)))
        die("powerloss: POWERLOSS_JOURNAL (%s) must be outside POWERLOSS_DIR (%s)\n", g_journal, g_dir);

    pthread_atfork(pl_prepare, pl_parent, pl_child);
    g_active = 1;
}

static int active(void)
{
    pthread_once(&g_once, init);
    return g_active;
}

static void lock(void) { pthread_mutex_lock(&g_mu); }
static void unlock(void)
{
    int e = errno;
    pthread_mutex_unlock(&g_mu);
    errno = e;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* mutex held */
static void jwritev_all(struct iovec *iov, int cnt)
{
    while (cnt > 0 && iov->iov_len == 0) {
        iov++;
        cnt--;
    }
    while (cnt > 0) {
        ssize_t n = real_writev(g_jfd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("powerloss: journal write to %s failed: %s\n", g_journal, strerror(errno));
        }
        if (n == 0)
            die("powerloss: journal write to %s made no progress\n", g_journal);
        size_t left = (size_t)n;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
}

static void jrecord(uint8_t type, uint8_t flags, const uint64_t *vals, int nvals, const void *tail, size_t tlen);

/* mutex held; (re)opens the journal if needed; returns its size */
static uint64_t jensure(void)
{
    struct stat st;
    if (g_jfd >= 0 && fstat(g_jfd, &st) == 0 && (uint64_t)st.st_dev == g_jdev && (uint64_t)st.st_ino == g_jino)
        return (uint64_t)st.st_size;
    /* Not open yet, or the process closed/reused our descriptor. */
    int fd = real_open(g_journal, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        die("powerloss: cannot open journal %s: %s\n", g_journal, strerror(errno));
    if (fstat(fd, &st) != 0)
        die("powerloss: cannot stat journal %s: %s\n", g_journal, strerror(errno));
    g_jdev = (uint64_t)st.st_dev;
    g_jino = (uint64_t)st.st_ino;
    __atomic_store_n(&g_jfd, fd, __ATOMIC_RELEASE);
    uint64_t version = 1;
    jrecord(R_HEADER, 0, &version, 1, g_dir, g_dirlen);
    if (fstat(fd, &st) != 0)
        die("powerloss: cannot stat journal %s: %s\n", g_journal, strerror(errno));
    return (uint64_t)st.st_size;
}

/* mutex held */
static void jrecord(uint8_t type, uint8_t flags, const uint64_t *vals, int nvals, const void *tail, size_t tlen)
{
    if (type != R_HEADER)
        jensure();
    unsigned char head[16 + 8 * 6];
    size_t body = (size_t)nvals * 8 + tlen;
    if (body > UINT32_MAX)
        die("powerloss: journal record too large\n");
    put32(head, PL_MAGIC);
    head[4] = type;
    head[5] = flags;
    head[6] = 0;
    head[7] = 0;
    put32(head + 8, (uint32_t)body);
    put32(head + 12, (uint32_t)getpid());
    for (int i = 0; i < nvals; i++)
        put64(head + 16 + 8 * i, vals[i]);
    struct iovec iov[2] = {
        {.iov_base = head, .iov_len = 16 + (size_t)nvals * 8},
        {.iov_base = (void *)tail, .iov_len = tlen},
    };
    jwritev_all(iov, 2);
}

/* mutex held */
static int known_has(uint64_t dev, uint64_t ino)
{
    for (size_t i = 0; i < g_nknown; i++)
        if (g_known[i].dev == dev && g_known[i].ino == ino)
            return 1;
    return 0;
}

/* mutex held */
static void known_add(uint64_t dev, uint64_t ino)
{
    if (known_has(dev, ino))
        return;
    if (g_nknown == g_capknown) {
        size_t cap = g_capknown ? g_capknown * 2 : 64;
        struct entry *k = realloc(g_known, cap * sizeof *k);
        if (!k)
            die("powerloss: out of memory\n");
        g_known = k;
        g_capknown = cap;
    }
    g_known[g_nknown].dev = dev;
    g_known[g_nknown].ino = ino;
    __atomic_store_n(&g_nknown, g_nknown + 1, __ATOMIC_RELEASE);
}

static int fd_slot_ok(int fd) { return fd >= 0 && fd < PL_MAXFD; }

static int fd_maybe_tracked(int fd)
{
    return fd_slot_ok(fd) && __atomic_load_n(&g_fds[fd], __ATOMIC_ACQUIRE) != NULL;
}

/* mutex held */
static void set_entry(int fd, struct entry *e)
{
    struct entry *old = g_fds[fd];
    __atomic_store_n(&g_fds[fd], e, __ATOMIC_RELEASE);
    free(old);
}

/* mutex held: newfd now refers to what oldfd refers to (or is untracked) */
static void copy_entry(int newfd, int oldfd)
{
    if (!fd_slot_ok(newfd))
        return;
    struct entry *e = NULL;
    if (fd_slot_ok(oldfd) && g_fds[oldfd]) {
        e = malloc(sizeof *e);
        if (!e)
            die("powerloss: out of memory\n");
        *e = *g_fds[oldfd];
    }
    set_entry(newfd, e);
}

/* Canonical path of an open fd if it is under the dir. */
static int fd_under_dir(int fd, char *out, size_t outlen)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, outlen - 1);
    if (n <= 0)
        return 0;
    out[n] = 0;
    if (g_dirlen == 1)
        return out[0] == '/';
    return (size_t)n > g_dirlen && memcmp(out, g_dir, g_dirlen) == 0 && out[g_dirlen] == '/';
}

/*
 * mutex held. Journal the old state of [off, off+len) (or [off, EOF) when
 * whole_tail) of inode dev/ino, reading old bytes from src (a readable fd
 * of that inode; only used when some old bytes exist).
 */
static void capture(int src, uint64_t dev, uint64_t ino, uint64_t off, uint64_t len, uint64_t size, int whole_tail,
                    int op)
{
    uint64_t end = off + len < off ? UINT64_MAX : off + len;
    uint64_t cap_end = whole_tail ? size : (end < size ? end : size);
    uint64_t pos = off;
    int flags = op;
    do {
        size_t chunk = 0;
        if (pos < cap_end)
            chunk = (size_t)(cap_end - pos < PL_CHUNK ? cap_end - pos : PL_CHUNK);
        size_t got = 0;
        while (got < chunk) {
            ssize_t r = pread(src, g_buf + got, chunk - got, (off_t)(pos + got));
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                die("powerloss: cannot read old bytes (ino %llu): %s\n", (unsigned long long)ino, strerror(errno));
            }
            if (r == 0) {
                memset(g_buf + got, 0, chunk - got); /* shrank behind our back */
                break;
            }
            got += (size_t)r;
        }
        uint64_t piece_end = pos + chunk;
        uint64_t piece_len = (piece_end < cap_end || end < piece_end) ? chunk : end - pos;
        uint64_t vals[5] = {dev, ino, pos, piece_len, size};
        jrecord(R_WRITE, (uint8_t)flags, vals, 5, g_buf, chunk);
        flags = op | OP_CONTINUED;
        pos = piece_end;
    } while (pos < cap_end);
}

struct ctx {
    struct entry e;
    struct stat st;
    int fl;
    int err;
};

/*
 * If fd is tracked: returns 1 with the mutex held and c filled in.
 * Otherwise returns 0, mutex not held. errno is preserved either way.
 */
static int track_begin(int fd, struct ctx *c)
{
    c->err = errno;
    if (!active() || !fd_maybe_tracked(fd))
        return 0;
    lock();
    struct entry *e = g_fds[fd];
    if (e) {
        if (fstat(fd, &c->st) == 0 && S_ISREG(c->st.st_mode) && (uint64_t)c->st.st_dev == e->dev &&
            (uint64_t)c->st.st_ino == e->ino) {
            c->e = *e;
            c->fl = real_fcntl(fd, F_GETFL);
            if (c->fl < 0)
                c->fl = 0;
            errno = c->err;
            return 1;
        }
        /* Stale: fd was closed behind our back (close_range, fclose...). */
        set_entry(fd, NULL);
    }
    pthread_mutex_unlock(&g_mu);
    errno = c->err;
    return 0;
}

static void track_end(void) { unlock(); }

/* mutex held: journal a change of [off, off+len) of tracked fd */
static void journal_fd(int fd, struct ctx *c, uint64_t off, uint64_t len, int whole_tail, int op)
{
    uint64_t size = (uint64_t)c->st.st_size;
    int src = -1, opened = 0;
    if (off < size && (len > 0 || whole_tail)) {
        int acc = c->fl & O_ACCMODE;
        if ((acc == O_RDWR || acc == O_RDONLY) && !(c->fl & O_DIRECT)) {
            src = fd;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            src = real_open(link, O_RDONLY | O_CLOEXEC);
            if (src < 0)
                die("powerloss: cannot reopen %s for reading: %s\n", link, strerror(errno));
            opened = 1;
        }
    }
    capture(src, c->e.dev, c->e.ino, off, len, size, whole_tail, op);
    if (opened)
        real_close(src);
    errno = c->err;
}

static uint64_t cur_off(int fd, struct ctx *c)
{
    if (c->fl & O_APPEND)
        return (uint64_t)c->st.st_size;
    off_t o = lseek(fd, 0, SEEK_CUR);
    return o < 0 ? 0 : (uint64_t)o;
}

static uint64_t iov_total(const struct iovec *iov, int cnt)
{
    uint64_t t = 0;
    if (!iov || cnt <= 0)
        return 0;
    for (int i = 0; i < cnt; i++) {
        t += iov[i].iov_len;
        if (t < iov[i].iov_len)
            return UINT64_MAX;
    }
    return t;
}

/* At most how many bytes a copy from `in` (at *in_off, or its file offset)
 * can move: the rest of the source file when it is a regular file. */
static uint64_t copy_limit(int in, const off_t *in_off, uint64_t len)
{
    int err = errno;
    struct stat st;
    if (fstat(in, &st) == 0 && S_ISREG(st.st_mode)) {
        off_t at = in_off ? *in_off : lseek(in, 0, SEEK_CUR);
        if (at >= 0) {
            uint64_t left = (uint64_t)at < (uint64_t)st.st_size ? (uint64_t)st.st_size - (uint64_t)at : 0;
            if (left < len)
                len = left;
        }
    }
    errno = err;
    return len;
}

#define NOSYS_IF_NULL(f)                                                                                                \
    do {                                                                                                                \
        if (!(f)) {                                                                                                     \
            errno = ENOSYS;                                                                                             \
            return -1;                                                                                                  \
        }                                                                                                               \
    } while (0)

/* ---- open ---------------------------------------------------------------- */

enum open_kind { K_OPEN, K_OPEN64, K_OPENAT, K_OPENAT64, K_CREAT, K_CREAT64, K_OPEN2, K_OPEN64_2, K_OPENAT2, K_OPENAT64_2 };

static int call_open(enum open_kind k, int dirfd, const char *path, int flags, mode_t mode)
{
    switch (k) {
    case K_OPEN:
        NOSYS_IF_NULL(real_open);
        return real_open(path, flags, mode);
    case K_OPEN64:
        NOSYS_IF_NULL(real_open64);
        return real_open64(path, flags, mode);
    case K_OPENAT:
        NOSYS_IF_NULL(real_openat);
        return real_openat(dirfd, path, flags, mode);
    case K_OPENAT64:
        NOSYS_IF_NULL(real_openat64);
        return real_openat64(dirfd, path, flags, mode);
    case K_CREAT:
        NOSYS_IF_NULL(real_creat);
        return real_creat(path, mode);
    case K_CREAT64:
        NOSYS_IF_NULL(real_creat64);
        return real_creat64(path, mode);
    case K_OPEN2:
        NOSYS_IF_NULL(real___open_2);
        return real___open_2(path, flags);
    case K_OPEN64_2:
        NOSYS_IF_NULL(real___open64_2);
        return real___open64_2(path, flags);
    case K_OPENAT2:
        NOSYS_IF_NULL(real___openat_2);
        return real___openat_2(dirfd, path, flags);
    case K_OPENAT64_2:
        NOSYS_IF_NULL(real___openat64_2);
        return real___openat64_2(dirfd, path, flags);
    }
    errno = ENOSYS;
    return -1;
}

static int do_open(enum open_kind k, int dirfd, const char *path, int flags, mode_t mode)
{
    int err = errno;
    if (!active() || !path) {
        errno = err;
        return call_open(k, dirfd, path, flags, mode);
    }
    int tmpfile = (flags & O_TMPFILE) == O_TMPFILE;
    struct stat pre;
    int pre_state = -1; /* 1 exists, 0 does not exist, -1 unknown */
    if (!tmpfile && (flags & (O_CREAT | O_TRUNC))) {
        if (fstatat(dirfd, path, &pre, 0) == 0)
            pre_state = 1;
        else if (errno == ENOENT)
            pre_state = 0;
    }

    int locked = 0;
    uint64_t done_dev = 0, done_ino = 0;
    char cpath[PATH_MAX];
    if (!tmpfile && (flags & O_TRUNC) && pre_state == 1 && S_ISREG(pre.st_mode) && pre.st_size > 0) {
        /* O_TRUNC destroys data: save it first if the file is tracked. */
        int rfd = call_open(K_OPENAT, dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
        struct stat rst;
        if (rfd >= 0 && fstat(rfd, &rst) == 0 && S_ISREG(rst.st_mode) && fd_under_dir(rfd, cpath, sizeof cpath)) {
            lock();
            locked = 1;
            if (fstat(rfd, &rst) != 0)
                die("powerloss: fstat failed: %s\n", strerror(errno));
            uint64_t vals[3] = {(uint64_t)rst.st_dev, (uint64_t)rst.st_ino, (uint64_t)rst.st_size};
            jrecord(R_OPEN, OPEN_TRUNC, vals, 3, cpath, strlen(cpath));
            known_add(vals[0], vals[1]);
            capture(rfd, vals[0], vals[1], 0, (uint64_t)rst.st_size, (uint64_t)rst.st_size, 1, OP_OPEN_TRUNC);
            done_dev = vals[0];
            done_ino = vals[1];
        }
        if (rfd >= 0)
            real_close(rfd);
    }

    errno = err;
    int fd = call_open(k, dirfd, path, flags, mode);
    int e2 = errno;
    if (fd >= 0) {
        struct stat st;
        int track = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fd_under_dir(fd, cpath, sizeof cpath);
        if (track) {
            if (!fd_slot_ok(fd))
                die("powerloss: fd %d too large to track\n", fd);
            if (!locked) {
                lock();
                locked = 1;
            }
            struct entry *e = malloc(sizeof *e);
            if (!e)
                die("powerloss: out of memory\n");
            e->dev = (uint64_t)st.st_dev;
            e->ino = (uint64_t)st.st_ino;
            set_entry(fd, e);
            if ((flags & O_TRUNC) && pre_state == 1 && S_ISREG(pre.st_mode) && pre.st_size > 0 &&
                (uint64_t)pre.st_dev == e->dev && (uint64_t)pre.st_ino == e->ino &&
                (e->dev != done_dev || e->ino != done_ino))
                die("powerloss: could not save %s before O_TRUNC (unreadable?)\n", cpath);
            if (e->dev != done_dev || e->ino != done_ino) {
                int created = tmpfile || ((flags & O_CREAT) && pre_state == 0);
                uint8_t fl = (uint8_t)((created ? OPEN_CREATED : 0) | ((flags & O_TRUNC) ? OPEN_TRUNC : 0));
                uint64_t size = created ? 0 : (uint64_t)st.st_size;
                uint64_t vals[3] = {e->dev, e->ino, size};
                jrecord(R_OPEN, fl, vals, 3, cpath, strlen(cpath));
                known_add(e->dev, e->ino);
            }
        } else if (fd_maybe_tracked(fd)) {
            if (!locked) {
                lock();
                locked = 1;
            }
            set_entry(fd, NULL);
        }
    }
    if (locked)
        pthread_mutex_unlock(&g_mu);
    errno = e2;
    return fd;
}

static mode_t open_mode(int flags, va_list ap)
{
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
        return (mode_t)va_arg(ap, unsigned int);
    return 0;
}

PL_EXPORT int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return do_open(K_OPEN, AT_FDCWD, path, flags, mode);
}

PL_EXPORT int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return do_open(K_OPEN64, AT_FDCWD, path, flags, mode);
}

PL_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return do_open(K_OPENAT, dirfd, path, flags, mode);
}

PL_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return do_open(K_OPENAT64, dirfd, path, flags, mode);
}

PL_EXPORT int creat(const char *path, mode_t mode)
{
    return do_open(K_CREAT, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

PL_EXPORT int creat64(const char *path, mode_t mode)
{
    return do_open(K_CREAT64, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

PL_EXPORT int __open_2(const char *path, int flags) { return do_open(K_OPEN2, AT_FDCWD, path, flags, 0); }
PL_EXPORT int __open64_2(const char *path, int flags) { return do_open(K_OPEN64_2, AT_FDCWD, path, flags, 0); }
PL_EXPORT int __openat_2(int dirfd, const char *path, int flags) { return do_open(K_OPENAT2, dirfd, path, flags, 0); }
PL_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    return do_open(K_OPENAT64_2, dirfd, path, flags, 0);
}

/* ---- descriptor bookkeeping ---------------------------------------------- */

/* The process is about to close / overwrite fd: forget it (and our journal
 * descriptor, should a broad closer hit it). */
static void forget_fd(int fd)
{
    if (!fd_maybe_tracked(fd) && __atomic_load_n(&g_jfd, __ATOMIC_ACQUIRE) != fd)
        return;
    lock();
    if (fd_slot_ok(fd) && g_fds[fd])
        set_entry(fd, NULL);
    if (g_jfd == fd && fd >= 0)
        __atomic_store_n(&g_jfd, -1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_mu);
}

/* newfd (just returned by dup & co.) now refers to oldfd's file. */
static void dup_fd(int newfd, int oldfd)
{
    if (newfd < 0 || newfd == oldfd)
        return;
    if (!fd_maybe_tracked(oldfd) && !fd_maybe_tracked(newfd))
        return;
    lock();
    copy_entry(newfd, oldfd);
    pthread_mutex_unlock(&g_mu);
}

PL_EXPORT int close(int fd)
{
    int err = errno;
    if (active())
        forget_fd(fd);
    errno = err;
    return real_close(fd);
}

PL_EXPORT int dup(int fd)
{
    int err = errno;
    active();
    errno = err;
    int r = real_dup(fd);
    err = errno;
    if (r >= 0 && active())
        dup_fd(r, fd);
    errno = err;
    return r;
}

PL_EXPORT int dup2(int oldfd, int newfd)
{
    int err = errno;
    if (active() && oldfd != newfd)
        forget_fd(newfd);
    errno = err;
    int r = real_dup2(oldfd, newfd);
    err = errno;
    if (r >= 0 && active())
        dup_fd(r, oldfd);
    errno = err;
    return r;
}

PL_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    int err = errno;
    if (active() && oldfd != newfd)
        forget_fd(newfd);
    errno = err;
    NOSYS_IF_NULL(real_dup3);
    int r = real_dup3(oldfd, newfd, flags);
    err = errno;
    if (r >= 0 && active())
        dup_fd(r, oldfd);
    errno = err;
    return r;
}

static int do_fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    int r = real(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) {
        int err = errno;
        if (active())
            dup_fd(r, fd);
        errno = err;
    }
    return r;
}

/* glibc's own fcntl reads the third argument as a void * as well. */
PL_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int err = errno;
    active();
    errno = err;
    return do_fcntl(real_fcntl, fd, cmd, arg);
}

PL_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int err = errno;
    active();
    errno = err;
    return do_fcntl(real_fcntl64, fd, cmd, arg);
}

/* ---- data changes -------------------------------------------------------- */

PL_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    struct ctx c;
    if (!track_begin(fd, &c))
        return real_write(fd, buf, n);
    if (n > 0)
        journal_fd(fd, &c, cur_off(fd, &c), n, 0, OP_WRITE);
    ssize_t r = real_write(fd, buf, n);
    track_end();
    return r;
}

static ssize_t do_pwrite(ssize_t (*real)(int, const void *, size_t, off_t), int fd, const void *buf, size_t n,
                         off_t off)
{
    struct ctx c;
    if (!track_begin(fd, &c)) {
        NOSYS_IF_NULL(real);
        return real(fd, buf, n, off);
    }
    if (n > 0 && off >= 0) {
        /* Linux: pwrite on an O_APPEND fd appends, whatever the offset. */
        uint64_t at = (c.fl & O_APPEND) ? (uint64_t)c.st.st_size : (uint64_t)off;
        journal_fd(fd, &c, at, n, 0, OP_PWRITE);
    }
    errno = c.err;
    ssize_t r = real ? real(fd, buf, n, off) : (errno = ENOSYS, -1);
    track_end();
    return r;
}

PL_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    active();
    return do_pwrite(real_pwrite, fd, buf, n, off);
}

PL_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    active();
    return do_pwrite(real_pwrite64, fd, buf, n, off);
}

PL_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    struct ctx c;
    if (!track_begin(fd, &c))
        return real_writev(fd, iov, cnt);
    uint64_t n = iov_total(iov, cnt);
    if (n > 0)
        journal_fd(fd, &c, cur_off(fd, &c), n, 0, OP_WRITEV);
    ssize_t r = real_writev(fd, iov, cnt);
    track_end();
    return r;
}

static ssize_t do_pwritev(ssize_t (*real)(int, const struct iovec *, int, off_t),
                          ssize_t (*real2)(int, const struct iovec *, int, off_t, int), int fd,
                          const struct iovec *iov, int cnt, off_t off, int flags)
{
    struct ctx c;
    if (!track_begin(fd, &c)) {
        if (real2)
            return real2(fd, iov, cnt, off, flags);
        NOSYS_IF_NULL(real);
        return real(fd, iov, cnt, off);
    }
    uint64_t n = iov_total(iov, cnt);
    if (n > 0 && off >= -1) {
        int append = ((c.fl & O_APPEND) && !(flags & RWF_NOAPPEND)) || (flags & RWF_APPEND);
        uint64_t at;
        if (append)
            at = (uint64_t)c.st.st_size;
        else if (off == -1)
            at = cur_off(fd, &c);
        else
            at = (uint64_t)off;
        journal_fd(fd, &c, at, n, 0, OP_PWRITEV);
    }
    errno = c.err;
    ssize_t r;
    if (real2)
        r = real2(fd, iov, cnt, off, flags);
    else if (real)
        r = real(fd, iov, cnt, off);
    else {
        errno = ENOSYS;
        r = -1;
    }
    track_end();
    return r;
}

PL_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    active();
    return do_pwritev(real_pwritev, NULL, fd, iov, cnt, off, 0);
}

PL_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    active();
    return do_pwritev(real_pwritev64, NULL, fd, iov, cnt, off, 0);
}

PL_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    active();
    if (!real_pwritev2) {
        errno = ENOSYS;
        return -1;
    }
    return do_pwritev(NULL, real_pwritev2, fd, iov, cnt, off, flags);
}

PL_EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    active();
    if (!real_pwritev64v2) {
        errno = ENOSYS;
        return -1;
    }
    return do_pwritev(NULL, real_pwritev64v2, fd, iov, cnt, off, flags);
}

static int do_ftruncate(int (*real)(int, off_t), int fd, off_t len)
{
    struct ctx c;
    if (!track_begin(fd, &c)) {
        NOSYS_IF_NULL(real);
        return real(fd, len);
    }
    uint64_t size = (uint64_t)c.st.st_size;
    if (len >= 0 && (uint64_t)len != size)
        journal_fd(fd, &c, (uint64_t)len, (uint64_t)len < size ? size - (uint64_t)len : 0, 1, OP_TRUNCATE);
    errno = c.err;
    int r = real ? real(fd, len) : (errno = ENOSYS, -1);
    track_end();
    return r;
}

PL_EXPORT int ftruncate(int fd, off_t len)
{
    active();
    return do_ftruncate(real_ftruncate, fd, len);
}

PL_EXPORT int ftruncate64(int fd, off_t len)
{
    active();
    return do_ftruncate(real_ftruncate64, fd, len);
}

static int do_truncate(int (*real)(const char *, off_t), const char *path, off_t len)
{
    int err = errno;
    if (!active() || !path || __atomic_load_n(&g_nknown, __ATOMIC_ACQUIRE) == 0) {
        errno = err;
        NOSYS_IF_NULL(real);
        return real(path, len);
    }
    lock();
    struct stat st;
    if (len >= 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode) && known_has((uint64_t)st.st_dev, (uint64_t)st.st_ino) &&
        (uint64_t)len != (uint64_t)st.st_size) {
        uint64_t size = (uint64_t)st.st_size;
        int rfd = -1;
        if ((uint64_t)len < size) {
            rfd = real_open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
            if (rfd < 0)
                die("powerloss: cannot open %s for reading: %s\n", path, strerror(errno));
            if (fstat(rfd, &st) != 0)
                die("powerloss: fstat failed: %s\n", strerror(errno));
            size = (uint64_t)st.st_size;
        }
        capture(rfd, (uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)len,
                (uint64_t)len < size ? size - (uint64_t)len : 0, size, 1, OP_TRUNCATE);
        if (rfd >= 0)
            real_close(rfd);
    }
    errno = err;
    int r = real ? real(path, len) : (errno = ENOSYS, -1);
    unlock();
    return r;
}

PL_EXPORT int truncate(const char *path, off_t len) { return do_truncate(real_truncate, path, len); }
PL_EXPORT int truncate64(const char *path, off_t len) { return do_truncate(real_truncate64, path, len); }

/* mutex held: journal what fallocate(mode, off, len) may change */
static void journal_fallocate(int fd, struct ctx *c, int mode, off_t off, off_t len)
{
    if (off < 0 || len <= 0)
        return;
    uint64_t size = (uint64_t)c->st.st_size;
    if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE))
        journal_fd(fd, c, (uint64_t)off, (uint64_t)len, 1, OP_FALLOCATE); /* shifts the whole tail */
    else if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
        journal_fd(fd, c, (uint64_t)off, (uint64_t)len, 0, OP_FALLOCATE);
    else if (!(mode & FALLOC_FL_KEEP_SIZE) && (uint64_t)off + (uint64_t)len > size)
        journal_fd(fd, c, size, 0, 0, OP_FALLOCATE); /* size change only */
}

static int do_fallocate(int (*real)(int, int, off_t, off_t), int fd, int mode, off_t off, off_t len)
{
    struct ctx c;
    if (!track_begin(fd, &c)) {
        NOSYS_IF_NULL(real);
        return real(fd, mode, off, len);
    }
    journal_fallocate(fd, &c, mode, off, len);
    errno = c.err;
    int r = real ? real(fd, mode, off, len) : (errno = ENOSYS, -1);
    track_end();
    return r;
}

PL_EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
    active();
    return do_fallocate(real_fallocate, fd, mode, off, len);
}

PL_EXPORT int fallocate64(int fd, int mode, off_t off, off_t len)
{
    active();
    return do_fallocate(real_fallocate64, fd, mode, off, len);
}

static int do_posix_fallocate(int (*real)(int, off_t, off_t), int fd, off_t off, off_t len)
{
    struct ctx c;
    if (!track_begin(fd, &c))
        return real ? real(fd, off, len) : ENOSYS;
    journal_fallocate(fd, &c, 0, off, len);
    errno = c.err;
    int r = real ? real(fd, off, len) : ENOSYS;
    track_end();
    return r;
}

PL_EXPORT int posix_fallocate(int fd, off_t off, off_t len)
{
    active();
    return do_posix_fallocate(real_posix_fallocate, fd, off, len);
}

PL_EXPORT int posix_fallocate64(int fd, off_t off, off_t len)
{
    active();
    return do_posix_fallocate(real_posix_fallocate64, fd, off, len);
}

PL_EXPORT ssize_t copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned int flags)
{
    struct ctx c;
    if (!track_begin(out, &c)) {
        NOSYS_IF_NULL(real_copy_file_range);
        return real_copy_file_range(in, in_off, out, out_off, len, flags);
    }
    uint64_t n = copy_limit(in, in_off, len);
    if (n > 0)
        journal_fd(out, &c, out_off ? (uint64_t)*out_off : cur_off(out, &c), n, 0, OP_COPY);
    errno = c.err;
    ssize_t r = real_copy_file_range ? real_copy_file_range(in, in_off, out, out_off, len, flags) : (errno = ENOSYS, -1);
    track_end();
    return r;
}

static ssize_t do_sendfile(ssize_t (*real)(int, int, off_t *, size_t), int out, int in, off_t *off, size_t count)
{
    struct ctx c;
    if (!track_begin(out, &c)) {
        NOSYS_IF_NULL(real);
        return real(out, in, off, count);
    }
    uint64_t n = copy_limit(in, off, count);
    if (n > 0)
        journal_fd(out, &c, cur_off(out, &c), n, 0, OP_COPY);
    errno = c.err;
    ssize_t r = real ? real(out, in, off, count) : (errno = ENOSYS, -1);
    track_end();
    return r;
}

PL_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
    active();
    return do_sendfile(real_sendfile, out, in, off, count);
}

PL_EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t count)
{
    active();
    return do_sendfile(real_sendfile64, out, in, off, count);
}

PL_EXPORT ssize_t splice(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned int flags)
{
    struct ctx c;
    if (!track_begin(out, &c)) {
        NOSYS_IF_NULL(real_splice);
        return real_splice(in, in_off, out, out_off, len, flags);
    }
    if (len > 0)
        journal_fd(out, &c, out_off ? (uint64_t)*out_off : cur_off(out, &c), len, 0, OP_COPY);
    errno = c.err;
    ssize_t r = real_splice ? real_splice(in, in_off, out, out_off, len, flags) : (errno = ENOSYS, -1);
    track_end();
    return r;
}

/* ---- durability points --------------------------------------------------- */

static int do_fsync(int (*real)(int), int fd, uint8_t kind)
{
    struct ctx c;
    if (!track_begin(fd, &c)) {
        NOSYS_IF_NULL(real);
        return real(fd);
    }
    /* Mutex held: no tracked write is in flight, so everything journaled
     * so far has reached the page cache before the fsync starts. */
    uint64_t covers = jensure();
    uint64_t size = (uint64_t)c.st.st_size;
    pthread_mutex_unlock(&g_mu);
    errno = c.err;
    int r = real ? real(fd) : (errno = ENOSYS, -1);
    if (r == 0) {
        int err = errno;
        lock();
        uint64_t vals[4] = {c.e.dev, c.e.ino, covers, size};
        jrecord(R_SYNC, kind, vals, 4, NULL, 0);
        pthread_mutex_unlock(&g_mu);
        errno = err;
    }
    return r;
}

PL_EXPORT int fsync(int fd)
{
    active();
    return do_fsync(real_fsync, fd, 1);
}

PL_EXPORT int fdatasync(int fd)
{
    active();
    return do_fsync(real_fdatasync, fd, 2);
}

/* mutex held: journal size if a journal exists (nothing to cover otherwise) */
static int journal_open_pos(uint64_t *pos)
{
    if (g_jfd < 0)
        return 0;
    *pos = jensure();
    return 1;
}

PL_EXPORT int syncfs(int fd)
{
    int err = errno;
    if (!active()) {
        errno = err;
        NOSYS_IF_NULL(real_syncfs);
        return real_syncfs(fd);
    }
    uint64_t covers = 0;
    lock();
    int have = journal_open_pos(&covers);
    pthread_mutex_unlock(&g_mu);
    errno = err;
    NOSYS_IF_NULL(real_syncfs);
    int r = real_syncfs(fd);
    if (r == 0 && have) {
        err = errno;
        lock();
        jrecord(R_SYNC_ALL, 1, &covers, 1, NULL, 0);
        pthread_mutex_unlock(&g_mu);
        errno = err;
    }
    return r;
}

PL_EXPORT void sync(void)
{
    int err = errno;
    if (!active()) {
        errno = err;
        real_sync();
        return;
    }
    uint64_t covers = 0;
    lock();
    int have = journal_open_pos(&covers);
    pthread_mutex_unlock(&g_mu);
    errno = err;
    real_sync();
    if (have) {
        err = errno;
        lock();
        jrecord(R_SYNC_ALL, 2, &covers, 1, NULL, 0);
        pthread_mutex_unlock(&g_mu);
        errno = err;
    }
}

/* ---- namespace (pass-through; only logs GONE) ------------------------------ */

/* mutex held: would removing this name free a tracked inode? */
static int gone_candidate(int dirfd, const char *path, struct stat *st)
{
    return path && fstatat(dirfd, path, st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st->st_mode) && st->st_nlink == 1 &&
           known_has((uint64_t)st->st_dev, (uint64_t)st->st_ino);
}

static int namespace_watch(void) { return active() && __atomic_load_n(&g_nknown, __ATOMIC_ACQUIRE) > 0; }

enum rename_kind { RN_RENAME, RN_RENAMEAT, RN_RENAMEAT2 };

static int call_rename(enum rename_kind k, int odfd, const char *old, int ndfd, const char *new, unsigned int flags)
{
    switch (k) {
    case RN_RENAME:
        NOSYS_IF_NULL(real_rename);
        return real_rename(old, new);
    case RN_RENAMEAT:
        NOSYS_IF_NULL(real_renameat);
        return real_renameat(odfd, old, ndfd, new);
    case RN_RENAMEAT2:
        NOSYS_IF_NULL(real_renameat2);
        return real_renameat2(odfd, old, ndfd, new, flags);
    }
    errno = ENOSYS;
    return -1;
}

static int do_rename(enum rename_kind k, int odfd, const char *old, int ndfd, const char *new, unsigned int flags)
{
    int err = errno;
    if (!namespace_watch()) {
        errno = err;
        return call_rename(k, odfd, old, ndfd, new, flags);
    }
    lock();
    struct stat ns, os;
    int gone = 0;
    if (!(flags & (RENAME_EXCHANGE | RENAME_NOREPLACE)) && gone_candidate(ndfd, new, &ns))
        gone = !(old && fstatat(odfd, old, &os, AT_SYMLINK_NOFOLLOW) == 0 && os.st_dev == ns.st_dev &&
                 os.st_ino == ns.st_ino);
    errno = err;
    int r = call_rename(k, odfd, old, ndfd, new, flags);
    int e2 = errno;
    if (r == 0 && gone) {
        uint64_t vals[2] = {(uint64_t)ns.st_dev, (uint64_t)ns.st_ino};
        jrecord(R_GONE, 2, vals, 2, NULL, 0);
    }
    pthread_mutex_unlock(&g_mu);
    errno = e2;
    return r;
}

PL_EXPORT int rename(const char *old, const char *new) { return do_rename(RN_RENAME, AT_FDCWD, old, AT_FDCWD, new, 0); }

PL_EXPORT int renameat(int odfd, const char *old, int ndfd, const char *new)
{
    return do_rename(RN_RENAMEAT, odfd, old, ndfd, new, 0);
}

PL_EXPORT int renameat2(int odfd, const char *old, int ndfd, const char *new, unsigned int flags)
{
    return do_rename(RN_RENAMEAT2, odfd, old, ndfd, new, flags);
}

static int do_unlink(int use_at, int dirfd, const char *path, int flags)
{
    int err = errno;
    if (!namespace_watch() || (flags & AT_REMOVEDIR)) {
        errno = err;
        if (use_at) {
            NOSYS_IF_NULL(real_unlinkat);
            return real_unlinkat(dirfd, path, flags);
        }
        NOSYS_IF_NULL(real_unlink);
        return real_unlink(path);
    }
    lock();
    struct stat st;
    int gone = gone_candidate(dirfd, path, &st);
    errno = err;
    int r;
    if (use_at)
        r = real_unlinkat ? real_unlinkat(dirfd, path, flags) : (errno = ENOSYS, -1);
    else
        r = real_unlink ? real_unlink(path) : (errno = ENOSYS, -1);
    int e2 = errno;
    if (r == 0 && gone) {
        uint64_t vals[2] = {(uint64_t)st.st_dev, (uint64_t)st.st_ino};
        jrecord(R_GONE, 1, vals, 2, NULL, 0);
    }
    pthread_mutex_unlock(&g_mu);
    errno = e2;
    return r;
}

PL_EXPORT int unlink(const char *path) { return do_unlink(0, AT_FDCWD, path, 0); }
PL_EXPORT int unlinkat(int dirfd, const char *path, int flags) { return do_unlink(1, dirfd, path, flags); }
