/*
 * test_net_nicspec.c - the --nic spec parser, address/rate helpers and MAC
 * generation of src/net/nicspec.c, and the nft rules each spec produces
 * (src/net/nftrules.c).  No host access: pure parsing and text.
 *
 * Every bad input must fail with -EINVAL and a message naming the field.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "net/internal.h" /* nft_nic_ruleset(): the rule text, pure */
#include "net/net.h"

static void test_full_spec(void **state)
{
	struct net_nic_spec s;
	struct net_err err;
	char buf[64];

	(void)state;
	assert_int_equal(
	    net_nic_spec_parse("tag=admin,mac=02:AA:bb:cc:dd:0e,ip=10.0.0.5/24,"
	                       "gateway=10.0.0.1,resolvers=1.1.1.1;2001:db8::53,"
	                       "allowed_ips=10.1.0.0/16;2001:db8::/64,vlan=42,"
	                       "max_bandwidth=50M,queues=4,allow_ip_spoofing,allow_mac_spoofing,"
	                       "allow_dhcp_spoofing,allow_restricted_traffic,vhost",
	                       &s, &err),
	    0);
	assert_string_equal(s.tag, "admin");
	assert_true(s.mac_set);
	net_mac_format(s.mac, buf);
	assert_string_equal(buf, "02:aa:bb:cc:dd:0e");
	assert_true(s.has_ip);
	assert_int_equal(s.ip.prefix, 24);
	net_addr_format(&s.ip.a, buf, sizeof(buf));
	assert_string_equal(buf, "10.0.0.5");
	assert_true(s.has_gateway);
	assert_int_equal(s.n_resolvers, 2);
	assert_int_equal(s.resolvers[1].family, AF_INET6);
	assert_int_equal(s.n_allowed, 2);
	assert_int_equal(s.allowed[1].prefix, 64);
	assert_int_equal(s.vlan, 42);
	assert_int_equal(s.max_bandwidth, 50000000);
	assert_int_equal(s.queues, 4);
	assert_int_equal(s.allow, NET_ALLOW_IP_SPOOF | NET_ALLOW_MAC_SPOOF | NET_ALLOW_DHCP_SPOOF |
	                              NET_ALLOW_RESTRICTED);
	assert_true(s.vhost);
}

static void test_minimal_spec(void **state)
{
	struct net_nic_spec s;
	struct net_err err;

	(void)state;
	assert_int_equal(net_nic_spec_parse("tag=ext0", &s, &err), 0);
	assert_false(s.mac_set);
	assert_false(s.has_ip);
	assert_int_equal(s.vlan, 0);
	assert_int_equal(s.allow, 0);
	assert_int_equal(s.queues, 1);
	net_nic_spec_finish(&s, "vm-uuid-1", 0);
	assert_true(s.mac_set);
	assert_int_equal(s.mac[0], 0x02);
}

static const struct {
	const char *spec;
	const char *field; /* must appear in the message */
} bad[] = {
    {"", "tag"},
    {"mac=02:00:00:00:00:01", "tag"},
    {"tag=", "nic tag"},
    {"tag=a b", "nic tag"},
    {"tag=averyveryverylongname", "nic tag"},
    {"tag=zvm0", "reserved"},
    {"tag=a,tag=b", "tag given twice"},
    {"tag=a,mac=", "mac"},
    {"tag=a,mac=02:00:00:00:00", "mac"},
    {"tag=a,mac=02:00:00:00:00:0g", "mac"},
    {"tag=a,mac=02:00:00:00:00:001", "mac"},
    {"tag=a,mac=02.00.00.00.00.01", "mac"},
    {"tag=a,mac=01:00:5e:00:00:01", "multicast"},
    {"tag=a,mac=00:00:00:00:00:00", "zeros"},
    {"tag=a,ip=10.0.0.256/24", "ip"},
    {"tag=a,ip=10.0.0.1/33", "ip"},
    {"tag=a,ip=10.0.0.1/", "ip"},
    {"tag=a,ip=10.0.0.1/-1", "ip"},
    {"tag=a,ip=10.0.0.1/2x", "ip"},
    {"tag=a,ip=/24", "ip"},
    {"tag=a,ip=2001:db8::1/129", "ip"},
    {"tag=a,ip=hello", "ip"},
    {"tag=a,gateway=10.0.0.1", "gateway needs ip"},
    {"tag=a,ip=10.0.0.2/24,gateway=10.0.0", "gateway"},
    {"tag=a,ip=10.0.0.2/24,gateway=fe80::1", "families"},
    {"tag=a,resolvers=", "resolvers"},
    {"tag=a,resolvers=1.1.1.1;;1.0.0.1", "resolvers"},
    {"tag=a,resolvers=1.1.1.1;x", "resolvers"},
    {"tag=a,resolvers=1.1.1.1/32", "resolvers"},
    {"tag=a,resolvers=1.1.1.1;1.1.1.2;1.1.1.3;1.1.1.4;1.1.1.5", "resolvers"},
    {"tag=a,allowed_ips=10.0.0.0/8;10.0.0.0/99", "allowed_ips"},
    {"tag=a,allowed_ips=;", "allowed_ips"},
    {"tag=a,vlan=0", "vlan"},
    {"tag=a,vlan=4095", "vlan"},
    {"tag=a,vlan=-1", "vlan"},
    {"tag=a,vlan=12a", "vlan"},
    {"tag=a,vlan=", "vlan"},
    {"tag=a,vlan=99999999999999999999", "vlan"},
    {"tag=a,max_bandwidth=", "max_bandwidth"},
    {"tag=a,max_bandwidth=fast", "max_bandwidth"},
    {"tag=a,max_bandwidth=50X", "max_bandwidth"},
    {"tag=a,max_bandwidth=-5M", "max_bandwidth"},
    {"tag=a,max_bandwidth=1", "max_bandwidth"},
    {"tag=a,max_bandwidth=100G", "max_bandwidth"},
    {"tag=a,max_bandwidth=99999999999999999999999", "max_bandwidth"},
    {"tag=a,queues=0", "queues"},
    {"tag=a,queues=9", "queues"},
    {"tag=a,queues=12", "queues"},
    {"tag=a,queues=2,queues=2", "queues given twice"},
    {"tag=a,colour=blue", "unknown key \"colour\""},
    {"tag=a,allow_everything", "unknown key"},
    {"tag=a,=x", "unknown key"},
};

static void test_bad_specs(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct net_nic_spec s;
		struct net_err err;
		int r = net_nic_spec_parse(bad[i].spec, &s, &err);

		if (r != -EINVAL || !strstr(err.msg, bad[i].field))
			fail_msg("spec \"%s\": r=%d msg \"%s\", want field \"%s\"", bad[i].spec, r,
			         err.msg, bad[i].field);
	}
}

static void test_rates(void **state)
{
	uint64_t r;

	(void)state;
	assert_int_equal(net_rate_parse("50M", &r), 0);
	assert_int_equal(r, 50000000);
	assert_int_equal(net_rate_parse("1G", &r), 0);
	assert_int_equal(r, 1000000000);
	assert_int_equal(net_rate_parse("800kbit", &r), 0);
	assert_int_equal(r, 800000);
	assert_int_equal(net_rate_parse("100000", &r), 0);
	assert_int_equal(r, 100000);
	assert_int_not_equal(net_rate_parse("M", &r), 0);
	assert_int_not_equal(net_rate_parse("5MM", &r), 0);
	assert_int_equal(net_rate_parse("20000000T", &r), -ERANGE);
}

static void test_mac_generation(void **state)
{
	uint8_t a[6], b[6], c[6], d[6];

	(void)state;
	net_mac_generate("vm-one", 0, a);
	net_mac_generate("vm-one", 0, b);
	net_mac_generate("vm-one", 1, c);
	net_mac_generate("vm-two", 0, d);
	assert_memory_equal(a, b, 6);
	assert_memory_not_equal(a, c, 6);
	assert_memory_not_equal(a, d, 6);
	assert_int_equal(a[0], 0x02); /* locally administered, unicast */
	assert_int_equal(c[0] & 0x03, 0x02);
}

static void test_linklocal(void **state)
{
	uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
	struct net_addr a;
	char buf[64];

	(void)state;
	net_mac_linklocal(mac, &a);
	net_addr_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "fe80::11:22ff:fe33:4455");
}

static void test_duplicates_and_vmid(void **state)
{
	struct net_nic_spec s[2];
	struct net_err err;

	(void)state;
	assert_int_equal(net_nic_spec_parse("tag=a,mac=02:00:00:00:00:01", &s[0], &err), 0);
	assert_int_equal(net_nic_spec_parse("tag=b,mac=02:00:00:00:00:01", &s[1], &err), 0);
	assert_int_equal(net_nic_specs_check(s, 2, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "mac 02:00:00:00:00:01"));
	s[1].mac[5] = 2;
	assert_int_equal(net_nic_specs_check(s, 2, &err), 0);
	assert_int_equal(net_vmid_check("abc123"), 0);
	assert_int_not_equal(net_vmid_check(""), 0);
	assert_int_not_equal(net_vmid_check("ABC"), 0);
	assert_int_not_equal(net_vmid_check("123456789"), 0);
	assert_int_not_equal(net_vmid_check("a-b"), 0);
}

static void test_cidr(void **state)
{
	struct net_cidr c;

	(void)state;
	assert_int_equal(net_cidr_parse("10.0.0.1", &c), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(net_cidr_parse("2001:db8::/32", &c), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(c.a.family, AF_INET6);
	assert_int_equal(net_cidr_parse("0.0.0.0/0", &c), 0);
	assert_int_not_equal(net_cidr_parse("10.0.0.1/0032", &c), 0);
}

/* The rules of one NIC from a spec string, as nft command text. */
static char *rules_of(const char *spec)
{
	struct net_nic nic;
	struct net_err err;
	char *text;

	memset(&nic, 0, sizeof(nic));
	snprintf(nic.tap, sizeof(nic.tap), "zvmvm1n0");
	if (net_nic_spec_parse(spec, &nic.spec, &err))
		fail_msg("spec \"%s\": %s", spec, err.msg);
	net_nic_spec_finish(&nic.spec, "vm1", 0);
	assert_int_equal(nft_nic_ruleset("vm1", 0, &nic, &text), 0);
	return text;
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void test_rules_default(void **state)
{
	char *r = rules_of("tag=t0,mac=02:11:22:33:44:55,ip=10.0.0.5/24");

	(void)state;
	assert_non_null(strstr(r, "add table bridge zonevm_vm1\n"));
	assert_non_null(strstr(r, "hook prerouting priority -200"));
	assert_non_null(strstr(r, "guest iifname \"zvmvm1n0\" jump n0\n"));
	for (int d = 0; d < NET_DROP_COUNT; d++) {
		char c[64];
		snprintf(c, sizeof(c), "add counter bridge zonevm_vm1 n0_%s\n",
		         net_drop_name((enum net_drop)d));
		assert_non_null(strstr(r, c));
	}
	assert_non_null(strstr(r, "ether saddr != 02:11:22:33:44:55 counter name n0_mac drop"));
	assert_non_null(
	    strstr(r, "ether type != { ip, ip6, arp } counter name n0_restricted drop"));
	assert_null(strstr(r, "8021q")); /* the restricted rule drops tagged frames already */
	assert_non_null(strstr(r, "udp sport 67 counter name n0_dhcp drop"));
	assert_non_null(strstr(r, "udp sport 547 counter name n0_dhcp drop"));
	assert_non_null(strstr(r, "arp saddr ether != 02:11:22:33:44:55 counter name n0_arp drop"));
	assert_non_null(
	    strstr(r, "arp saddr ip != { 0.0.0.0/32, 10.0.0.5/32 } counter name n0_arp"));
	assert_non_null(strstr(r, "ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept"));
	assert_non_null(strstr(r, "ip saddr != { 10.0.0.5/32 } counter name n0_ip drop"));
	assert_non_null(strstr(r, "ip6 saddr != { ::/128, fe80::11:22ff:fe33:4455/128 } counter"));
	/* the DHCP discovery accept comes before the source-IP drop */
	assert_true(strstr(r, "udp dport 67 accept") < strstr(r, "ip saddr != { 10.0.0.5/32 }"));
	free(r);
}

static void test_rules_allow_flags(void **state)
{
	char *r;

	(void)state;
	r = rules_of("tag=t0,ip=10.0.0.5/24,allow_ip_spoofing,allow_mac_spoofing,"
	             "allow_dhcp_spoofing,allow_restricted_traffic");
	/* every block lifted: only VLAN-tagged frames are still dropped */
	assert_int_equal(count(r, " drop\n"), 1);
	assert_non_null(strstr(r, "ether type { 8021q, 8021ad } counter name n0_restricted drop"));
	assert_non_null(strstr(r, "jump n0"));
	free(r);
	r = rules_of("tag=t0,ip=10.0.0.5/24,allow_mac_spoofing");
	assert_null(strstr(r, "n0_mac drop"));
	assert_int_equal(count(r, "n0_arp drop"), 1); /* the sender-IP rule stays */
	assert_non_null(strstr(r, "n0_ip drop"));
	free(r);
	r = rules_of("tag=t0,ip=10.0.0.5/24,allow_ip_spoofing");
	assert_null(strstr(r, "n0_ip drop"));
	assert_int_equal(count(r, "n0_arp drop"), 1); /* the sender-MAC rule stays */
	free(r);
	r = rules_of("tag=t0,allow_dhcp_spoofing");
	assert_null(strstr(r, "n0_dhcp"
	                      " drop"));
	free(r);
	r = rules_of("tag=t0,allow_restricted_traffic");
	assert_null(strstr(r, "ether type != { ip, ip6, arp }"));
	assert_int_equal(count(r, "n0_restricted drop"), 1);
	assert_non_null(strstr(r, "ether type { 8021q, 8021ad } counter name n0_restricted drop"));
	free(r);
}

static void test_rules_sources(void **state)
{
	char *r;

	(void)state;
	/* nested allowed_ips collapse: nft refuses overlapping set intervals */
	r = rules_of("tag=t0,ip=10.1.2.3/24,allowed_ips=10.0.0.0/8;10.1.0.0/16;192.168.0.0/24;"
	             "2001:db8::/64;2001:db8::1");
	assert_non_null(strstr(r, "ip saddr != { 10.0.0.0/8, 192.168.0.0/24 } counter"));
	assert_non_null(strstr(r, "ip6 saddr != { ::/128, "));
	assert_non_null(strstr(r, "2001:db8::/64 } counter"));
	assert_null(strstr(r, "2001:db8::1/128"));
	free(r);
	/* no IPv4 address: only DHCP discovery may leave */
	r = rules_of("tag=t0");
	assert_non_null(strstr(r, "ether type ip counter name n0_ip drop"));
	assert_non_null(strstr(r, "arp saddr ip != { 0.0.0.0/32 }"));
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_spec),           cmocka_unit_test(test_minimal_spec),
	    cmocka_unit_test(test_bad_specs),           cmocka_unit_test(test_rates),
	    cmocka_unit_test(test_mac_generation),      cmocka_unit_test(test_linklocal),
	    cmocka_unit_test(test_duplicates_and_vmid), cmocka_unit_test(test_cidr),
	    cmocka_unit_test(test_rules_default),       cmocka_unit_test(test_rules_allow_flags),
	    cmocka_unit_test(test_rules_sources),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
