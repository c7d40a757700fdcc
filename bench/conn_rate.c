/* bench/conn_rate.c — the client and the server of bench/conn_rate.sh (compiled by it with cc).
 *
 *   conn_rate server PORT WORKERS
 *       listens on [::]:PORT (IPv4 and IPv6), WORKERS processes accept and close at once.
 *   conn_rate client ADDR PORT SECONDS WORKERS
 *       WORKERS processes open TCP connections to ADDR:PORT one after the other for SECONDS:
 *       socket, SO_LINGER 0, connect (blocking: returns once the SYN-ACK is back, i.e. once the
 *       new connection has passed the forward path both ways), close (an RST: no TIME_WAIT on
 *       either side, so the client never runs out of ports). Prints one line:
 *       "<connections> <errors> <elapsed seconds>".
 *
 * A C client because a Python one (several processes) caps far below what the forward path
 * carries on this machine (bench/conn_rate.sh --python-client measures it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int server(int port, int workers) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0), zero = 0, one = 1;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
    if (fd < 0) { perror("socket"); return 1; }
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    if (listen(fd, 65535) < 0) { perror("listen"); return 1; }
    for (int i = 1; i < workers; i++)
        if (fork() == 0) { prctl(PR_SET_PDEATHSIG, SIGTERM); break; }
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0) close(c);
        else if (errno != EINTR && errno != ECONNABORTED) usleep(1000);
    }
}

static int client(const char *addr, int port, double seconds, int workers) {
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET; a4->sin_port = htons(port); sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6; a6->sin6_port = htons(port); sl = sizeof *a6;
    } else { fprintf(stderr, "bad address %s\n", addr); return 2; }
    int p[2];
    if (pipe(p) < 0) { perror("pipe"); return 1; }
    double start = now(), end = start + seconds;
    for (int w = 0; w < workers; w++) {
        if (fork() != 0) continue;
        close(p[0]);
        long ok = 0, err = 0;
        struct linger lg = {1, 0};
        while (now() < end) {
            int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0) { err++; continue; }
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            /* a lost SYN must not stall a worker for the kernel's 1 s retransmission */
            int syn = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &syn, sizeof syn);
            if (connect(fd, (struct sockaddr *)&ss, sl) == 0) ok++;
            else err++;
            close(fd);
        }
        char line[64];
        int n = snprintf(line, sizeof line, "%ld %ld\n", ok, err);
        if (write(p[1], line, n) != n) _exit(1);
        _exit(0);
    }
    close(p[1]);
    long ok = 0, err = 0, o, e;
    FILE *f = fdopen(p[0], "r");
    while (fscanf(f, "%ld %ld", &o, &e) == 2) { ok += o; err += e; }
    while (wait(NULL) > 0) {}
    printf("%ld %ld %.3f\n", ok, err, now() - start);
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc == 4 && strcmp(argv[1], "server") == 0) return server(atoi(argv[2]), atoi(argv[3]));
    if (argc == 6 && strcmp(argv[1], "client") == 0)
        return client(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: %s server PORT WORKERS | client ADDR PORT SECONDS WORKERS\n", argv[0]);
    return 2;
}
