/* The floor for `tune plan`: a static C program that reads the same kernel facts as
 * tune on one path, with raw system calls and no parsing beyond the decision, and
 * prints whether anything would change. benches/floors.sh runs it side by side with
 * tune in one hyperfine run and reports tune / floor.
 *
 *   plan-floor sysctl          the four sysctl playbooks (conntrack, ephemeral-ports,
 *                              listen-backlog, time-wait): their /proc/sys keys,
 *                              /proc/net/netstat, the sysctl.d directories; no
 *                              listener dump: the overflow counters are 0, so
 *                              listen_queue cannot matter (tune skips it too)
 *   plan-floor all             every bundled playbook: the above plus the link and
 *                              qdisc dumps (rtnetlink), /proc/PID/comm of every
 *                              process, softnet_stat, /proc/stat, softirqs,
 *                              stat/nf_conntrack, meminfo; /proc/stat and softirqs
 *                              again after WINDOW_MS (`all WINDOW_MS`, default 1): the
 *                              softirq share is a rate, read twice by tune as well
 *   plan-floor kmsg FILE       the kernel-log path: read FILE, search the patterns the
 *                              bundled playbooks look for
 *   plan-floor tw NETNS        the time-wait playbook in /run/netns/NETNS: setns, read
 *                              tcp_tw_reuse, count TIME_WAIT sockets (sock_diag, v4+v6)
 *   plan-floor links NETNS     the mtu and netem playbooks there: the link dump (without
 *                              statistics, RTEXT_FILTER_SKIP_STATS) and the qdisc dump
 *   plan-floor procs           the jvm-heap playbook's process walk: /proc/PID/comm of
 *                              every process, meminfo
 *   plan-floor allns           `--all-netns` with the mtu and netem playbooks: every
 *                              distinct network namespace on the host (its own, each
 *                              /run/netns entry, each /proc/PID/ns/net by inode, with
 *                              that process's cgroup and comm, which name it), then
 *                              in each one setns, the link dump and the qdisc dump
 *
 * Build: cc -O2 -static -o plan-floor plan-floor.c (benches/floors.sh does it).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char buf[1 << 16];

static long read_file(const char *path, char *out, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long n = 0, r;
    while ((r = read(fd, out + n, cap - 1 - n)) > 0) n += r;
    close(fd);
    out[n] = 0;
    return n;
}

static long read_num(const char *path) {
    char b[64];
    if (read_file(path, b, sizeof b) < 0) return -1;
    return strtol(b, NULL, 10);
}

/* The value of NAME in a "Section: names\nSection: values" file such as netstat. */
static long counter(const char *text, const char *section, const char *name) {
    const char *h = strstr(text, section);
    if (!h) return -1;
    const char *v = strstr(h + 1, section);
    if (!v) return -1;
    const char *p = h + strlen(section);
    int idx = 0;
    size_t len = strlen(name);
    while (*p && *p != '\n') {
        while (*p == ' ') p++;
        if (!strncmp(p, name, len) && (p[len] == ' ' || p[len] == '\n')) break;
        while (*p && *p != ' ' && *p != '\n') p++;
        idx++;
    }
    p = v + strlen(section);
    for (int i = 0; i <= idx; i++) {
        while (*p == ' ') p++;
        if (i == idx) return strtol(p, NULL, 10);
        while (*p && *p != ' ' && *p != '\n') p++;
    }
    return -1;
}

static int list_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int sysctl_path(void) {
    static char net[1 << 15];
    int change = 0;
    long max = read_num("/proc/sys/net/netfilter/nf_conntrack_max");
    long count = read_num("/proc/sys/net/netfilter/nf_conntrack_count");
    if (max > 0 && count * 100 > max * 90) change = 1;
    char range[64];
    if (read_file("/proc/sys/net/ipv4/ip_local_port_range", range, sizeof range) > 0) {
        long lo = strtol(range, NULL, 10), hi = strtol(strchr(range, '\t') ? strchr(range, '\t') : range, NULL, 10);
        if (hi - lo < 20000) change = 1;
    }
    read_file("/proc/sys/net/ipv4/ip_local_reserved_ports", range, sizeof range);
    if (read_num("/proc/sys/net/core/somaxconn") < 0) change = 1;
    if (read_num("/proc/sys/net/ipv4/tcp_tw_reuse") < 0) change = 1;
    /* Every counter the bundled playbooks name is TcpExt's: netstat, not snmp. */
    read_file("/proc/net/netstat", net, sizeof net);
    if (counter(net, "TcpExt:", "ListenOverflows") < 0) change = 1;
    if (counter(net, "TcpExt:", "TCPTimeWaitOverflow") < 0) change = 1;
    /* Persistence drift: which files boot would read. */
    list_dir("/etc/sysctl.d");
    list_dir("/run/sysctl.d");
    list_dir("/usr/local/lib/sysctl.d");
    list_dir("/usr/lib/sysctl.d");
    read_file("/etc/sysctl.conf", buf, sizeof buf);
    return change;
}

/* Receives a dump's replies; the number of data messages. */
static long recv_dump(int fd) {
    long count = 0;
    for (;;) {
        long n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return count;
        for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) return count;
            count++;
        }
    }
}

/* The link dump as tune asks for it: an ifinfomsg and IFLA_EXT_MASK skipping stats. */
static void dump_links(int fd) {
    struct {
        struct nlmsghdr h;
        struct ifinfomsg i;
        struct rtattr a;
        unsigned mask;
    } req = {{sizeof req, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0},
             {AF_UNSPEC},
             {RTA_LENGTH(sizeof(unsigned)), IFLA_EXT_MASK},
             RTEXT_FILTER_SKIP_STATS};
    send(fd, &req, sizeof req, 0);
    recv_dump(fd);
}

/* The qdisc dump as tune asks for it: a tcmsg (the kernel refuses a shorter request
 * with EINVAL, which is what this floor sent until 2026-12-04: it dumped no qdisc). */
static void dump_qdiscs(int fd) {
    struct {
        struct nlmsghdr h;
        struct tcmsg t;
    } req = {{sizeof req, RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP, 1, 0}, {AF_UNSPEC}};
    send(fd, &req, sizeof req, 0);
    recv_dump(fd);
}

static void enter_netns(const char *name) {
    char path[300];
    snprintf(path, sizeof path, "/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
        perror(path);
        exit(2);
    }
    close(fd);
}

static int tw_path(const char *ns) {
    enter_netns(ns);
    long reuse = read_num("/proc/sys/net/ipv4/tcp_tw_reuse");
    long total = 0;
    for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        struct {
            struct nlmsghdr h;
            struct inet_diag_req_v2 r;
        } req = {{sizeof req, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0},
                 {.sdiag_family = family, .sdiag_protocol = IPPROTO_TCP, .idiag_states = 1 << 6}};
        send(fd, &req, sizeof req, 0);
        total += recv_dump(fd);
        close(fd);
    }
    return reuse == 0 && total >= 10000;
}

static int links_path(const char *ns) {
    enter_netns(ns);
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return 2;
    dump_links(fd);
    dump_qdiscs(fd);
    close(fd);
    return 0;
}

/* Every distinct network namespace, found as tune finds them, then the links path in
 * each; back to its own namespace after each. */
#define MAX_NS 4096
static int allns_path(void) {
    static char paths[MAX_NS][300];
    static unsigned long inodes[MAX_NS];
    int count = 0;
    struct stat st;
    int own = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own < 0 || fstat(own, &st) < 0) return 2;
    dev_t nsfs = st.st_dev;
    inodes[count] = st.st_ino;
    paths[count++][0] = 0; /* its own: no setns */
    stat("/proc/1/ns/net", &st);
    char path[300];
    const char *dirs[] = {"/run/netns", "/proc"};
    for (int k = 0; k < 2; k++) {
        DIR *d = opendir(dirs[k]);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) && count < MAX_NS) {
            if (e->d_name[0] == '.' || (k == 1 && (e->d_name[0] < '0' || e->d_name[0] > '9')))
                continue;
            snprintf(path, sizeof path, k ? "/proc/%s/ns/net" : "/run/netns/%s", e->d_name);
            if (stat(path, &st) < 0 || st.st_dev != nsfs) continue;
            int seen = 0;
            for (int i = 0; i < count && !seen; i++) seen = inodes[i] == st.st_ino;
            if (seen) continue;
            if (k) { /* a process's namespace is named by its cgroup, or its comm */
                char name[300];
                snprintf(name, sizeof name, "/proc/%s/cgroup", e->d_name);
                read_file(name, buf, sizeof buf);
                snprintf(name, sizeof name, "/proc/%s/comm", e->d_name);
                read_file(name, buf, sizeof buf);
            }
            inodes[count] = st.st_ino;
            snprintf(paths[count++], sizeof paths[0], "%s", path);
        }
        closedir(d);
    }
    for (int i = 0; i < count; i++) {
        if (paths[i][0]) {
            int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
            if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) continue; /* it vanished */
            close(fd);
        }
        int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (nl >= 0) {
            dump_links(nl);
            dump_qdiscs(nl);
            close(nl);
        }
        if (paths[i][0] && setns(own, CLONE_NEWNET) < 0) return 2;
    }
    close(own);
    return 0;
}

static int procs_path(void) {
    static char big[1 << 16];
    int change = 0;
    read_file("/proc/meminfo", big, sizeof big);
    DIR *d = opendir("/proc");
    int dfd = d ? dirfd(d) : -1;
    struct dirent *e;
    char path[300], comm[64];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "%s/comm", e->d_name);
        int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        long n = read(fd, comm, sizeof comm - 1);
        close(fd);
        if (n > 0 && !strncmp(comm, "java\n", 5)) change = 1;
    }
    if (d) closedir(d);
    return change;
}

static int all_path(long window_ms) {
    static char big[1 << 16];
    int change = sysctl_path();
    read_num("/proc/sys/net/netfilter/nf_conntrack_buckets");
    read_num("/proc/sys/net/ipv4/tcp_max_tw_buckets");
    read_num("/proc/sys/net/core/netdev_max_backlog");
    read_num("/proc/sys/net/core/netdev_budget");
    read_num("/proc/sys/net/core/netdev_budget_usecs");
    read_file("/proc/net/softnet_stat", big, sizeof big);
    read_file("/proc/stat", big, sizeof big);
    read_file("/proc/softirqs", big, sizeof big);
    read_file("/proc/net/stat/nf_conntrack", big, sizeof big);
    read_file("/proc/meminfo", big, sizeof big);
    struct timespec w = {window_ms / 1000, (window_ms % 1000) * 1000000L};
    nanosleep(&w, NULL);
    read_file("/proc/stat", big, sizeof big);
    read_file("/proc/softirqs", big, sizeof big);
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd >= 0) {
        dump_links(fd);
        dump_qdiscs(fd);
        close(fd);
    }
    DIR *d = opendir("/proc");
    struct dirent *e;
    char path[300], comm[32];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        if (read_file(path, comm, sizeof comm) > 0 && !strcmp(comm, "java\n")) change = 1;
    }
    if (d) closedir(d);
    return change;
}

static int kmsg_path(const char *file) {
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 2;
    size_t cap = 1 << 24, n = 0;
    char *log = malloc(cap);
    long r;
    while (n < cap && (r = read(fd, log + n, cap - n)) > 0) n += r;
    close(fd);
    static const char *patterns[] = {"nf_conntrack: table full", "Memory cgroup out of memory",
                                     "TCP: time wait bucket table overflow",
                                     "Possible SYN flooding on port"};
    int hits = 0;
    for (unsigned i = 0; i < sizeof patterns / sizeof *patterns; i++)
        for (char *p = log; (p = memmem(p, log + n - p, patterns[i], strlen(patterns[i]))); p++)
            hits++;
    free(log);
    return hits > 0;
}

int main(int argc, char **argv) {
    int change;
    if (argc >= 2 && !strcmp(argv[1], "sysctl"))
        change = sysctl_path();
    else if (argc >= 2 && !strcmp(argv[1], "all"))
        change = all_path(argc >= 3 ? atol(argv[2]) : 1);
    else if (argc >= 3 && !strcmp(argv[1], "kmsg"))
        change = kmsg_path(argv[2]);
    else if (argc >= 3 && !strcmp(argv[1], "tw"))
        change = tw_path(argv[2]);
    else if (argc >= 3 && !strcmp(argv[1], "links"))
        change = links_path(argv[2]);
    else if (argc >= 2 && !strcmp(argv[1], "procs"))
        change = procs_path();
    else if (argc >= 2 && !strcmp(argv[1], "allns"))
        change = allns_path();
    else {
        fprintf(stderr, "usage: plan-floor sysctl|all|procs|allns|kmsg FILE|tw NETNS|links NETNS\n");
        return 2;
    }
    puts(change ? "changes" : "no change");
    return 0;
}
