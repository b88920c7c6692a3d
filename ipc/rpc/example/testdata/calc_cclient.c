/*
 * calc_cclient.c: a C client of calc.x, with rpcgen's stubs (rpcgen -l) and
 * libtirpc. Usage: calc_cclient tcp|udp port. It calls CALC_V1 at 127.0.0.1:port
 * and prints one line per answer, in the format of the Go test's show():
 *   null ok
 *   eval ok "greeting" value "text" tag0 tag1   (or: eval refused why)
 *   swab hex
 *   sort v...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <rpc/rpc.h>
#include "calc.h"

static void quote(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void eval(CLIENT *cl, request *r)
{
	answer *a = calc_eval_1(r, cl);
	if (!a) {
		clnt_perror(cl, "eval");
		exit(1);
	}
	if (!a->ok) {
		printf("eval refused %s\n", a->answer_u.why);
	} else {
		printf("eval ok ");
		quote(a->answer_u.res.greeting);
		printf(" %lld ", (long long)a->answer_u.res.value);
		quote(a->answer_u.res.text);
		printf(" %08x %08x\n", a->answer_u.res.tag[0], a->answer_u.res.tag[1]);
	}
	xdr_free((xdrproc_t)xdr_answer, (char *)a);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin;
	struct timeval wait = {1, 0};
	int sock = RPC_ANYSOCK;
	CLIENT *cl;
	request r;
	quad_t sumv[] = {1, -2, 1LL << 40, 5}, prodv[] = {3, -7, 1 << 20};
	quad_t sortv[] = {5, -1, 1LL << 62, 0, -(1LL << 62), 3};
	name words[] = {"strings", "of", "odd", "lengths", ""};
	u_quad_t in = 0x0102030405060708ULL, *out;
	nums sn = {6, sortv}, *sorted;
	u_int i;

	if (argc != 3)
		return 2;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(atoi(argv[2]));
	if (strcmp(argv[1], "tcp") == 0)
		cl = clnttcp_create(&sin, CALC_PROG, CALC_V1, &sock, 0, 0);
	else
		cl = clntudp_create(&sin, CALC_PROG, CALC_V1, wait, &sock);
	if (!cl) {
		clnt_pcreateerror("create");
		return 1;
	}
	if (!calc_null_1(NULL, cl)) {
		clnt_perror(cl, "null");
		return 1;
	}
	printf("null ok\n");

	memset(&r, 0, sizeof r);
	r.who = "sum"; r.what.kind = SUM; r.tag[0] = 1; r.tag[1] = 0xfffffffe;
	r.what.operand_u.values.nums_len = 4; r.what.operand_u.values.nums_val = sumv;
	eval(cl, &r);
	memset(&r, 0, sizeof r);
	r.who = "product"; r.what.kind = PRODUCT; r.tag[0] = 0x01020304; r.tag[1] = 0xa0b0c0d0;
	r.what.operand_u.values.nums_len = 3; r.what.operand_u.values.nums_val = prodv;
	eval(cl, &r);
	memset(&r, 0, sizeof r);
	r.who = "negate"; r.what.kind = NEGATE; r.what.operand_u.n = -0x0102030405060708LL;
	eval(cl, &r);
	memset(&r, 0, sizeof r);
	r.who = "\xc3\xbc" "n" "\xc3\xaf" "c" "\xc3\xb6" "d" "\xc3\xa9"; r.what.kind = CONCAT;
	r.what.operand_u.words.words_len = 5; r.what.operand_u.words.words_val = words;
	eval(cl, &r);
	memset(&r, 0, sizeof r);
	r.who = ""; r.what.kind = PRODUCT;
	eval(cl, &r);

	out = calc_swab_1(&in, cl);
	if (!out) {
		clnt_perror(cl, "swab");
		return 1;
	}
	printf("swab %016llx\n", (unsigned long long)*out);
	sorted = calc_sort_1(&sn, cl);
	if (!sorted) {
		clnt_perror(cl, "sort");
		return 1;
	}
	printf("sort");
	for (i = 0; i < sorted->nums_len; i++)
		printf(" %lld", (long long)sorted->nums_val[i]);
	printf("\n");
	clnt_destroy(cl);
	return 0;
}
