/* 1,500 probes, many:p100 .. many:p1599, one site each, for the tests of
 * attaching and detaching many probes.  Prints its pid, then fires every
 * probe once for each line on stdin and answers "fired"; exits on EOF. */
#include <stdio.h>
#include <sys/sdt.h>
#include <unistd.h>

#define P(n) DTRACE_PROBE(many, p##n);
#define P10(n) P(n##0) P(n##1) P(n##2) P(n##3) P(n##4) P(n##5) P(n##6) P(n##7) P(n##8) P(n##9)
#define P100(n) P10(n##0) P10(n##1) P10(n##2) P10(n##3) P10(n##4) \
		P10(n##5) P10(n##6) P10(n##7) P10(n##8) P10(n##9)

__attribute__((noinline)) static void fire_all(void)
{
	P100(1) P100(2) P100(3) P100(4) P100(5) P100(6) P100(7) P100(8)
	P100(9) P100(10) P100(11) P100(12) P100(13) P100(14) P100(15)
}

int main(void)
{
	char line[16];
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("%d\n", (int)getpid());
	while (fgets(line, sizeof line, stdin)) {
		fire_all();
		printf("fired\n");
	}
	return 0;
}
