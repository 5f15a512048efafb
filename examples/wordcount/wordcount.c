// wordcount: a second, small machine that proves the engine and the runtime are not
// sqlite-shaped. It counts the lines, words and bytes of stdin (or of files in its rootfs),
// prints its argv[0] (the machine's name), and reports what happens when it tries to write,
// since its profile declares no writable path at all; `--env` prints the environment it got.
#include <errno.h>
#include <stdio.h>
#include <string.h>

extern char **environ;

static void count(FILE *in, const char *name) {
  long lines = 0, words = 0, bytes = 0;
  int c, in_word = 0;
  while ((c = fgetc(in)) != EOF) {
    bytes++;
    if (c == '\n') lines++;
    if (c == ' ' || c == '\n' || c == '\t') in_word = 0;
    else if (!in_word) { in_word = 1; words++; }
  }
  printf("%ld %ld %ld %s\n", lines, words, bytes, name);
}

int main(int argc, char **argv) {
  printf("argv0 %s\n", argv[0]);
  if (argc == 1) { count(stdin, "-"); return 0; }
  int status = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--env")) {
      for (char **e = environ; *e; e++) printf("env %s\n", *e);
      continue;
    }
    if (!strcmp(argv[i], "--write") && i + 1 < argc) {
      const char *path = argv[++i];
      FILE *f = fopen(path, "w");
      if (f) { fputs("written\n", f); fclose(f); printf("wrote %s\n", path); }
      else { printf("cannot write %s: %s\n", path, strerror(errno)); status = 1; }
      continue;
    }
    FILE *f = fopen(argv[i], "r");
    if (!f) { printf("cannot read %s: %s\n", argv[i], strerror(errno)); status = 1; continue; }
    count(f, argv[i]);
    fclose(f);
  }
  return status;
}
