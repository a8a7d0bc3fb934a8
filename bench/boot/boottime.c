/*
 * boottime.c - benchmark helper: run a command, report how long it took
 * from process start to the first output line containing PATTERN, and the
 * command's resident memory at that moment.
 *
 *   boottime PATTERN -- CMD [ARGS...]
 *   prints: boot_ms=N rss_kb=N status=N
 *
 * The child's stdout and stderr are read through a pipe (and not shown);
 * after the pattern is seen the child is left to finish on its own (the
 * guest kit powers off) and its exit status is reported.  Figures only: no
 * assertion on how fast anything is.  A command still running after
 * BOOTTIME_LIMIT seconds (default 120) is killed, so one hung guest does
 * not stall a whole benchmark; its status is then 137.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child;

static void on_alarm(int sig)
{
	(void)sig;
	if (child > 0)
		kill(child, SIGKILL);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	char buf[65536];
	size_t have = 0;
	double start, boot = -1;
	long rss = -1;
	int p[2], status;
	pid_t pid;

	if (argc < 4 || strcmp(argv[2], "--") != 0) {
		fprintf(stderr, "usage: boottime PATTERN -- CMD [ARGS...]\n");
		return 2;
	}
	if (pipe(p) < 0)
		return 1;
	start = now_ms();
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execvp(argv[3], argv + 3);
		_exit(127);
	}
	close(p[1]);
	child = pid;
	signal(SIGALRM, on_alarm);
	alarm(getenv("BOOTTIME_LIMIT") ? (unsigned)atoi(getenv("BOOTTIME_LIMIT")) : 120);
	for (;;) {
		ssize_t n = read(p[0], buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		if (boot < 0 && strstr(buf, argv[1])) {
			boot = now_ms() - start;
			rss = rss_kb(pid);
		}
		if (have > sizeof(buf) / 2) { /* keep a tail for patterns across reads */
			memmove(buf, buf + have - 1024, 1024);
			have = 1024;
		}
	}
	waitpid(pid, &status, 0);
	printf("boot_ms=%.0f rss_kb=%ld status=%d\n", boot, rss,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return boot < 0;
}
