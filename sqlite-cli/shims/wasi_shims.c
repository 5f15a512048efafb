/* POSIX calls SQLite's shell needs that WASI preview1 cannot provide, or that older
 * wasi-libc releases do not. The definitions are weak: where wasi-libc has its own
 * (newer releases have both), a strong definition pulled from libc.a wins and nothing
 * clashes; where it has none, these are used. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wasi_shims.h"

/* WASI has no permission bits: succeed when the file exists, so the shell's writefile()
 * and .archive do not fail on a mode they cannot set anyway. */
__attribute__((weak)) int chmod(const char *path, mode_t mode) {
  struct stat st;
  (void)mode;
  return stat(path, &st);
}

/* Absolute, lexically normalized path of an existing file. WASI paths resolve under
 * preopened directories, so "." and ".." are folded without looking at symlinks. */
__attribute__((weak)) char *realpath(const char *__restrict path, char *__restrict resolved) {
  char buf[PATH_MAX];
  struct stat st;
  size_t len = 0;
  const char *p;

  if (path == NULL) {
    errno = EINVAL;
    return NULL;
  }
  if (path[0] == '\0') {
    errno = ENOENT;
    return NULL;
  }
  if (stat(path, &st) != 0) return NULL;

  if (path[0] != '/') {
    if (getcwd(buf, sizeof buf) == NULL) return NULL;
    len = strlen(buf);
    if (len == 1) len = 0; /* "/" */
  }
  buf[len] = '\0';
  for (p = path; *p != '\0';) {
    const char *seg;
    size_t n;
    while (*p == '/') p++;
    seg = p;
    while (*p != '\0' && *p != '/') p++;
    n = (size_t)(p - seg);
    if (n == 0 || (n == 1 && seg[0] == '.')) continue;
    if (n == 2 && seg[0] == '.' && seg[1] == '.') {
      while (len > 0 && buf[len - 1] != '/') len--;
      if (len > 0) len--;
      buf[len] = '\0';
      continue;
    }
    if (len + 1 + n + 1 > sizeof buf) {
      errno = ENAMETOOLONG;
      return NULL;
    }
    buf[len++] = '/';
    memcpy(buf + len, seg, n);
    len += n;
    buf[len] = '\0';
  }
  if (len == 0) {
    buf[0] = '/';
    buf[1] = '\0';
  }
  if (resolved == NULL) return strdup(buf);
  return strcpy(resolved, buf);
}
