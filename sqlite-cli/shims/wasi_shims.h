/* Declarations of the POSIX calls SQLite's shell uses that some wasi-libc releases lack
 * (Debian 12's wasi-libc has neither chmod nor realpath). Force-included into shell.c
 * (`-include shims/wasi_shims.h`) so the calls are declared on every wasi-libc. */
#ifndef WMB_WASI_SHIMS_H
#define WMB_WASI_SHIMS_H

#include <sys/types.h>

int chmod(const char *path, mode_t mode);
char *realpath(const char *__restrict path, char *__restrict resolved);

#endif
