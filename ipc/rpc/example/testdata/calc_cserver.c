/*
 * calc_cserver.c: a C server of calc.x, with rpcgen's dispatcher (rpcgen -m) and
 * libtirpc. It serves CALC_V1 on a TCP and a UDP socket of ports the kernel picks on
 * 127.0.0.1, without rpcbind, prints "tcpport udpport" and runs until killed.
 * Its answers are Calc's (calc.go): the ipc/rpc tests call it from Go.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <rpc/rpc.h>
#include "calc.h"

extern void calc_prog_1(struct svc_req *, SVCXPRT *);

void *calc_null_1_svc(void *arg, struct svc_req *req)
{
	static char dummy;
	(void)arg; (void)req;
	return &dummy;
}

answer *calc_eval_1_svc(request *arg, struct svc_req *req)
{
	static answer a;
	static char greeting[MAXNAME + 1];
	static char text[1025];
	u_int i;
	(void)req;
	memset(&a, 0, sizeof a);
	a.ok = TRUE;
	switch (arg->what.kind) {
	case SUM:
		for (i = 0; i < arg->what.operand_u.values.nums_len; i++)
			a.answer_u.res.value += arg->what.operand_u.values.nums_val[i];
		break;
	case PRODUCT:
		if (arg->what.operand_u.values.nums_len == 0) {
			a.ok = FALSE;
			a.answer_u.why = "empty product";
			return &a;
		}
		a.answer_u.res.value = 1;
		for (i = 0; i < arg->what.operand_u.values.nums_len; i++)
			a.answer_u.res.value *= arg->what.operand_u.values.nums_val[i];
		break;
	case NEGATE:
		a.answer_u.res.value = -arg->what.operand_u.n;
		break;
	case CONCAT:
		text[0] = 0;
		for (i = 0; i < arg->what.operand_u.words.words_len; i++) {
			if (i > 0)
				strncat(text, " ", sizeof text - strlen(text) - 1);
			strncat(text, arg->what.operand_u.words.words_val[i], sizeof text - strlen(text) - 1);
		}
		break;
	}
	snprintf(greeting, sizeof greeting, "hello, %s", arg->who);
	a.answer_u.res.greeting = greeting;
	a.answer_u.res.text = arg->what.kind == CONCAT ? text : "";
	a.answer_u.res.tag[0] = arg->tag[1];
	a.answer_u.res.tag[1] = arg->tag[0];
	return &a;
}

u_quad_t *calc_swab_1_svc(u_quad_t *arg, struct svc_req *req)
{
	static u_quad_t r;
	int i;
	(void)req;
	r = 0;
	for (i = 0; i < 8; i++)
		r |= ((*arg >> (8 * i)) & 0xff) << (8 * (7 - i));
	return &r;
}

static int cmp(const void *a, const void *b)
{
	quad_t x = *(const quad_t *)a, y = *(const quad_t *)b;
	return x < y ? -1 : x > y;
}

nums *calc_sort_1_svc(nums *arg, struct svc_req *req)
{
	static nums r;
	static quad_t vals[MAXNUMS];
	(void)req;
	r.nums_len = arg->nums_len;
	r.nums_val = vals;
	memcpy(vals, arg->nums_val, arg->nums_len * sizeof(quad_t));
	qsort(vals, r.nums_len, sizeof(quad_t), cmp);
	return &r;
}

static int bound(int type)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
		perror("socket/bind");
		exit(1);
	}
	return fd;
}

static int port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	getsockname(fd, (struct sockaddr *)&sin, &len);
	return ntohs(sin.sin_port);
}

int main(void)
{
	int tfd = bound(SOCK_STREAM), ufd = bound(SOCK_DGRAM);
	SVCXPRT *t, *u;
	if (listen(tfd, 16) < 0) {
		perror("listen");
		return 1;
	}
	t = svctcp_create(tfd, 0, 0);
	u = svcudp_create(ufd);
	/* protocol 0: do not register with rpcbind */
	if (!t || !u || !svc_register(t, CALC_PROG, CALC_V1, calc_prog_1, 0) ||
	    !svc_register(u, CALC_PROG, CALC_V1, calc_prog_1, 0)) {
		fprintf(stderr, "cannot create the service\n");
		return 1;
	}
	printf("%d %d\n", port(tfd), port(ufd));
	fflush(stdout);
	svc_run();
	return 1;
}
