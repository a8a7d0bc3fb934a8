/* test_pool_check.h - white-box pool invariants (test_pool_check.c). */
#ifndef ZONEVM_TEST_POOL_CHECK_H
#define ZONEVM_TEST_POOL_CHECK_H

struct pool;

/* Sync, then fail the test unless every space counter and the allocator are exact. */
void check_accounting(struct pool *p);

#endif
