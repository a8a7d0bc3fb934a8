/* test_size.c - cli_parse_size: suffixes, fractions, bad input, overflow. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/cli.h"

static void test_suffixes(void **state)
{
	uint64_t v;
	(void)state;
	assert_int_equal(cli_parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(cli_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(cli_parse_size("256M", &v), 0);
	assert_int_equal(v, 256ULL << 20);
	assert_int_equal(cli_parse_size("2g", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(cli_parse_size("3.5G", &v), 0);
	assert_int_equal(v, 3584ULL << 20);
	assert_int_equal(cli_parse_size("1GiB", &v), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(cli_parse_size("1T", &v), 0);
	assert_int_equal(v, 1ULL << 40);
}

static void test_bad(void **state)
{
	uint64_t v;
	(void)state;
	assert_int_equal(cli_parse_size("", &v), -EINVAL);
	assert_int_equal(cli_parse_size("M", &v), -EINVAL);
	assert_int_equal(cli_parse_size("12X", &v), -EINVAL);
	assert_int_equal(cli_parse_size("-1", &v), -EINVAL);
	assert_int_equal(cli_parse_size("1 G", &v), -EINVAL);
	assert_int_equal(cli_parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(cli_parse_size("99999999999T", &v), -ERANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_suffixes),
	    cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
