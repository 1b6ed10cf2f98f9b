/*
 * main.c - giambiod's command line and startup.
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "priv.h"
#include "sd.h"
#include "server.h"

/* sysexits(3) */
#define EXIT_USAGE 64
#define EXIT_CONFIG 78

#define DEFAULT_CONF SYSCONFDIR "/giambio/giambio.conf"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: giambiod [-c FILE] [-t] [-l LEVEL] [--listen ADDR]... "
	        "[--mode echo|chat] [-V] [-h]\n"
	        "  -c, --config FILE     configuration file (default %s)\n"
	        "  -t, --test            check the configuration and exit\n"
	        "  -l, --log-level LEVEL error, warning, info or debug\n"
	        "      --listen ADDR     host:port, [v6]:port or *:port; "
	        "repeatable,\n"
	        "                        replaces the file's listen list\n"
	        "      --mode MODE       echo or chat\n"
	        "  -V, --version         print the version and exit\n"
	        "  -h, --help            print this help and exit\n",
	        DEFAULT_CONF);
}

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "giambiod: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	usage(stderr);
	return EXIT_USAGE;
}

enum { OPT_LISTEN = 256, OPT_MODE };

/* Fills srv's command-line part; returns -1 to go on, else an exit code. */
static int parse_args(int argc, char **argv, struct server *srv, int *test)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct overrides *ov = &srv->ov;
	struct sockaddr_storage ss;
	socklen_t len;
	enum mode m;
	int c;

	while ((c = getopt_long(argc, argv, "c:tl:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			srv->conf_path = optarg;
			srv->conf_required = 1;
			break;
		case 't':
			*test = 1;
			break;
		case 'l':
			if ((ov->log_level = log_level_parse(optarg)) < 0)
				return bad_usage("bad log level '%s': expected error, "
				                 "warning, info or debug", optarg);
			break;
		case OPT_LISTEN:
			if (gb_addr_parse(optarg, &ss, &len) < 0)
				return bad_usage("bad listen address '%s': expected "
				                 "host:port, [v6]:port or *:port", optarg);
			if (ov->nlisten == CONF_LISTEN_MAX)
				return bad_usage("more than 16 --listen: '%s'", optarg);
			ov->listen[ov->nlisten++] = optarg;
			break;
		case OPT_MODE:
			if (conf_parse_mode(optarg, &m) < 0)
				return bad_usage("bad mode '%s': expected echo or chat",
				                 optarg);
			ov->mode = (int)m;
			break;
		case 'V':
			printf("giambiod %s (%s)\n", PACKAGE_VERSION, sd_support());
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument '%s'", argv[optind]);
	return -1;
}

static void print_error(const char *msg)
{
	fprintf(stderr, "giambiod: %s\n", msg);
}

int main(int argc, char **argv)
{
	static char *listen[CONF_LISTEN_MAX];
	static struct server srv;
	int test = 0, rc;

	srv.conf_path = DEFAULT_CONF;
	srv.ov = (struct overrides){ .listen = listen, .mode = -1,
	                             .log_level = -1 };
	if ((rc = parse_args(argc, argv, &srv, &test)) >= 0)
		return rc;
	log_init(srv.ov.log_level >= 0 ? srv.ov.log_level : LOG_INFO);
	conf_defaults(&srv.conf);
	if ((rc = server_load_conf(&srv, &srv.conf, print_error)) > 0) {
		fprintf(stderr, "giambiod: %d error%s in %s\n", rc,
		        rc == 1 ? "" : "s", srv.conf_path);
		return EXIT_CONFIG;
	}
	if (test) {
		printf("giambiod: configuration %s is OK\n", srv.conf_path);
		return 0;
	}
	log_set_level(srv.conf.log_level);
	if (priv_check(&srv.conf) < 0)
		return EXIT_CONFIG;
	if (iptable_init(&srv.per_ip) < 0 || chat_init(&srv.chat) < 0) {
		log_error("out of memory");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	rc = gb_run(server_main, &srv);
	if (rc < 0) {
		log_error("scheduler: %s", strerror(-rc));
		srv.exit_code = 1;
	}
	chat_free(&srv.chat);
	iptable_free(&srv.per_ip);
	conf_free(&srv.conf);
	return srv.exit_code;
}
