/* tmpdir.h — fresh temporary directories for tests that touch the disk, and their
 * removal. Honours $TMPDIR; never removes anything it did not make under it. */
#ifndef KEEL_TEST_TMPDIR_H
#define KEEL_TEST_TMPDIR_H

#include <stddef.h>

/* Makes $TMPDIR/keel-<tag>-XXXXXX (or under /tmp) into buf; aborts the test run if it
 * cannot. Returns buf. */
char *test_tmpdir(char *buf, size_t len, const char *tag);
/* Removes dir and everything in it; 0 on success. */
int test_rmtree(const char *dir);

#endif
