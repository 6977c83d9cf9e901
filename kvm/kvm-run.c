/*
 * kvm-run: runs one VM with a workload guest (DESIGN.md s.3, docs/kvm-run.1).
 *
 * Exit status: 0 the guest finished or the VM was asked to quit (command,
 * signal, --seconds); 1 the guest failed (assertion, KM_HC_FAIL, triple
 * fault) or KVM reported an error; 2 bad command line; 3 the VM could not
 * be set up (no /dev/kvm, missing capability, image not found).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "parse.h"
#include "rundir.h"
#include "kvm/control.h"
#include "kvm/dtrace-rec.h"
#include "kvm/kvm.h"
#include "kvm/loader.h"
#include "kvm/stats.h"
#include "kvm/uart.h"
#include "kvm/virtio-blk.h"
#include "kvm/x86/linux.h"
#include "kvm/x86/pc.h"
#include "migrate/migrate.h"
#include "snapshot/checkpoint.h"
#include "snapshot/restore.h"

#define EXIT_GUEST	1
#define EXIT_USAGE	2
#define EXIT_SETUP	3

struct options {
	struct kvm_config cfg;
	const char *guest;
	const char *guest_args;
	const char *guest_image;	/* --guest-image FILE; o->guest is then its name */
	char guest_name[32];		/* that name (km_boot_info.guest) */
	struct linux_params kboot;	/* kboot.kernel: --kernel given */
	const char *disk;		/* --disk or --disk-ro: a raw image */
	bool disk_ro;
	const char *rundir;
	uint64_t seconds;
	int verbose;
	int quiet;
	const char *restore;		/* --restore DIR[@ID] */
	const char *restore_disk;	/* --restore-disk FILE: the checkpoint's disk goes there */
	bool paused;			/* --paused */
	int lazy;			/* --lazy: 0 eager, 1 prefetch, 2 touch */
	bool mem_given, vcpus_given, guest_given;
	struct checkpoint_params ckpt;	/* ckpt.dir[0]: --checkpoint-dir given */
	const char *record_dirty;	/* --record-dirty FILE */
	uint64_t record_ms;		/* --record-interval */
	bool record_ms_given;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: kvm-run [OPTION]...\n"
"Run one VM with a workload guest on /dev/kvm.\n"
"\n"
"  -n, --name NAME        VM name; control socket at RUNDIR/NAME.sock\n"
"  -m, --mem SIZE         guest RAM (K/M/G suffixes, multiple of 2M; default 256M)\n"
"  -c, --vcpus N          vCPUs, 1 to %d (default 1)\n"
"  -g, --guest NAME|PATH  workload: idle, fill, dirtier, verify, compute (default idle)\n"
"  -a, --guest-arg ARGS   workload arguments, e.g. rate=20000,wss=256M,pattern=zipf\n"
"      --guest-image FILE a workload image of your own: a flat binary made with\n"
"                         the guest SDK (docs/guests.md), instead of --guest\n"
"  -k, --kernel FILE      boot a Linux bzImage instead of a workload (console: COM1,\n"
"                         socket RUNDIR/NAME.console with --name)\n"
"      --initrd FILE      with --kernel: the initial ramdisk\n"
"      --append CMDLINE   with --kernel: the kernel command line\n"
"                         (default \"console=ttyS0 reboot=k\")\n"
"      --disk FILE        with --kernel: a raw disk image as a virtio-blk disk\n"
"                         (/dev/vda; locked while the VM runs)\n"
"      --disk-ro FILE     the same, read-only\n"
"  -s, --seconds N        stop the VM after N seconds (default: run until the guest\n"
"                         finishes, quit is asked, or a signal arrives)\n"
"      --console FILE     guest console output to FILE (default stderr)\n"
"      --rundir DIR       run directory (default $KVM_MIGRATE_RUNDIR, /run/kvm-migrate)\n"
"      --no-irqchip       no in-kernel PIC/IOAPIC/LAPIC/PIT\n"
"      --dirty-log MODE   dirty tracking backend: bitmap, clear, ring\n"
"                         (default: clear where KVM offers it, else bitmap)\n"
"      --dirty-ring-size SIZE  per-vCPU dirty ring, power of two >= 4K (default 1M)\n"
"      --paused           start with the vCPUs stopped (cont on the control socket)\n"
"      --record-dirty FILE     record a dirty trace: the pages each interval dirtied\n"
"                              (kvm-migrate trace / simulate FILE; docs/format.md s.10)\n"
"      --record-interval MS    its interval, 1 to 3600000 ms (default %d)\n"
"\n"
"Checkpoints (docs/kvm-snapshot.1):\n"
"      --checkpoint-dir DIR    keep checkpoints of this VM in DIR (made 0700)\n"
"      --checkpoint-every MS   take one every MS milliseconds (default: on request)\n"
"      --checkpoint-keep N     keep the newest N restorable, delete the rest\n"
"      --checkpoint-chain N    increments before a new base (default %d)\n"
"      --no-checkpoint-compress  store pages raw (default: lz4 where it helps)\n"
"      --restore DIR[@ID]      run the VM from a checkpoint (default: the newest);\n"
"                              memory, vCPUs and guest come from it\n"
"      --lazy[=prefetch|touch] with --restore: start the VM before its pages are\n"
"                              read; they come in when touched, and meanwhile in\n"
"                              page order (prefetch, the default) or not (touch)\n"
"      --restore-disk FILE     with --restore: write the checkpoint's disk into FILE\n"
"                              (made if absent) and use it, not the image it names\n"
"  -v, --verbose          debug logging\n"
"  -q, --quiet            no statistics at exit\n"
"  -h, --help             this help\n"
"  -V, --version          version\n"
"\n"
"Exit status: 0 finished or quit, 1 guest or KVM failure, 2 usage, 3 setup.\n",
		KM_MAX_VCPUS, DTRACE_REC_DEFAULT_MS, CKPT_DEFAULT_CHAIN);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_CONSOLE = 256, OPT_RUNDIR, OPT_NO_IRQCHIP, OPT_DIRTY_LOG, OPT_RING_SIZE,
	       OPT_PAUSED, OPT_CKPT_DIR, OPT_CKPT_EVERY, OPT_CKPT_KEEP, OPT_CKPT_CHAIN,
	       OPT_CKPT_RAW, OPT_RESTORE, OPT_LAZY, OPT_INITRD, OPT_APPEND, OPT_DISK,
	       OPT_DISK_RO, OPT_RECORD_DIRTY, OPT_RECORD_INTERVAL, OPT_GUEST_IMAGE,
	       OPT_RESTORE_DISK };
	static const struct option longopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "guest", required_argument, NULL, 'g' },
		{ "guest-arg", required_argument, NULL, 'a' },
		{ "guest-image", required_argument, NULL, OPT_GUEST_IMAGE },
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "append", required_argument, NULL, OPT_APPEND },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "disk-ro", required_argument, NULL, OPT_DISK_RO },
		{ "seconds", required_argument, NULL, 's' },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "rundir", required_argument, NULL, OPT_RUNDIR },
		{ "no-irqchip", no_argument, NULL, OPT_NO_IRQCHIP },
		{ "dirty-log", required_argument, NULL, OPT_DIRTY_LOG },
		{ "dirty-ring-size", required_argument, NULL, OPT_RING_SIZE },
		{ "paused", no_argument, NULL, OPT_PAUSED },
		{ "checkpoint-dir", required_argument, NULL, OPT_CKPT_DIR },
		{ "checkpoint-every", required_argument, NULL, OPT_CKPT_EVERY },
		{ "checkpoint-keep", required_argument, NULL, OPT_CKPT_KEEP },
		{ "checkpoint-chain", required_argument, NULL, OPT_CKPT_CHAIN },
		{ "no-checkpoint-compress", no_argument, NULL, OPT_CKPT_RAW },
		{ "restore", required_argument, NULL, OPT_RESTORE },
		{ "lazy", optional_argument, NULL, OPT_LAZY },
		{ "restore-disk", required_argument, NULL, OPT_RESTORE_DISK },
		{ "record-dirty", required_argument, NULL, OPT_RECORD_DIRTY },
		{ "record-interval", required_argument, NULL, OPT_RECORD_INTERVAL },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->cfg.mem_size = 256ULL << 20;
	o->cfg.nr_vcpus = 1;
	o->cfg.irqchip = true;
	o->cfg.dirty_backend = DIRTY_DEFAULT;
	o->guest = "idle";
	o->guest_args = "";
	o->ckpt.compress = true;
	o->record_ms = DTRACE_REC_DEFAULT_MS;
	while ((c = getopt_long(argc, argv, "n:m:c:g:a:k:s:vqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (!rundir_valid_name(optarg)) {
				fprintf(stderr, "kvm-run: --name '%s': use 1-48 of A-Z a-z 0-9 . _ - "
					"(not starting with '.')\n", optarg);
				return -1;
			}
			o->cfg.name = optarg;
			break;
		case 'm':
			if (parse_size(optarg, &v) != 0 || v < KM_MIN_MEM ||
			    v % (2ULL << 20) != 0 || v > (256ULL << 30)) {
				fprintf(stderr, "kvm-run: --mem '%s': need a size from 16M to 256G "
					"that is a multiple of 2M (e.g. 512M, 4G)\n", optarg);
				return -1;
			}
			o->cfg.mem_size = v;
			o->mem_given = true;
			break;
		case 'c':
			if (parse_u64(optarg, 1, KM_MAX_VCPUS, &v) != 0) {
				fprintf(stderr, "kvm-run: --vcpus '%s': need 1 to %d\n", optarg,
					KM_MAX_VCPUS);
				return -1;
			}
			o->cfg.nr_vcpus = (unsigned int)v;
			o->vcpus_given = true;
			break;
		case 'g':
		case OPT_GUEST_IMAGE:
			/* Either names the workload: an image beside another would silently lose. */
			if (o->guest_image || (c == OPT_GUEST_IMAGE && o->guest_given)) {
				fprintf(stderr, "kvm-run: one workload: --guest or --guest-image\n");
				return -1;
			}
			o->guest_given = true;
			if (c == 'g') {
				o->guest = optarg;
				break;
			}
			o->guest_image = optarg;
			loader__image_name(optarg, o->guest_name, sizeof(o->guest_name));
			o->guest = o->guest_name;
			break;
		case 'a':
			if (strlen(optarg) >= KM_BOOT_ARGS_MAX) {
				fprintf(stderr, "kvm-run: --guest-arg: longer than %d bytes\n",
					KM_BOOT_ARGS_MAX - 1);
				return -1;
			}
			o->guest_args = optarg;
			break;
		case 'k':
			o->kboot.kernel = optarg;
			break;
		case OPT_INITRD:
			o->kboot.initrd = optarg;
			break;
		case OPT_APPEND:
			o->kboot.cmdline = optarg;
			break;
		case OPT_DISK:
		case OPT_DISK_RO:
			if (o->disk) {
				fprintf(stderr, "kvm-run: one --disk or --disk-ro at most\n");
				return -1;
			}
			o->disk = optarg;
			o->disk_ro = c == OPT_DISK_RO;
			break;
		case 's':
			if (parse_u64(optarg, 1, 365ULL * 24 * 3600, &v) != 0) {
				fprintf(stderr, "kvm-run: --seconds '%s': need a whole number of "
					"seconds, at least 1\n", optarg);
				return -1;
			}
			o->seconds = v;
			break;
		case OPT_CONSOLE:
			o->cfg.console_path = optarg;
			break;
		case OPT_RUNDIR:
			o->rundir = optarg;
			break;
		case OPT_NO_IRQCHIP:
			o->cfg.irqchip = false;
			break;
		case OPT_DIRTY_LOG:
			if (dirty__parse_backend(optarg, &o->cfg.dirty_backend) != 0) {
				fprintf(stderr, "kvm-run: --dirty-log '%s': use bitmap, clear or ring\n",
					optarg);
				return -1;
			}
			break;
		case OPT_RING_SIZE:
			if (parse_size(optarg, &v) != 0 || v < 4096 || v > (1ULL << 30) ||
			    (v & (v - 1))) {
				fprintf(stderr, "kvm-run: --dirty-ring-size '%s': need a power of two "
					"from 4K to 1G\n", optarg);
				return -1;
			}
			o->cfg.dirty_ring_bytes = (uint32_t)v;
			break;
		case OPT_PAUSED:
			o->paused = true;
			break;
		case OPT_CKPT_DIR:
			if (strlen(optarg) >= sizeof(o->ckpt.dir)) {
				fprintf(stderr, "kvm-run: --checkpoint-dir: too long\n");
				return -1;
			}
			snprintf(o->ckpt.dir, sizeof(o->ckpt.dir), "%s", optarg);
			break;
		case OPT_CKPT_EVERY:
			if (parse_u64(optarg, 10, 86400000, &v) != 0) {
				fprintf(stderr, "kvm-run: --checkpoint-every '%s': need 10 to 86400000 "
					"milliseconds\n", optarg);
				return -1;
			}
			o->ckpt.every_ms = v;
			break;
		case OPT_CKPT_KEEP:
			if (parse_u64(optarg, 1, 100000, &v) != 0) {
				fprintf(stderr, "kvm-run: --checkpoint-keep '%s': need 1 to 100000\n",
					optarg);
				return -1;
			}
			o->ckpt.keep = (unsigned int)v;
			break;
		case OPT_CKPT_CHAIN:
			if (parse_u64(optarg, 1, 100000, &v) != 0) {
				fprintf(stderr, "kvm-run: --checkpoint-chain '%s': need 1 to 100000\n",
					optarg);
				return -1;
			}
			o->ckpt.chain_max = (unsigned int)v;
			break;
		case OPT_CKPT_RAW:
			o->ckpt.compress = false;
			break;
		case OPT_RESTORE:
			o->restore = optarg;
			break;
		case OPT_RESTORE_DISK:
			o->restore_disk = optarg;
			break;
		case OPT_RECORD_DIRTY:
			o->record_dirty = optarg;
			break;
		case OPT_RECORD_INTERVAL: {
			/* "50" or "50ms", as the examples write it. */
			char ms[32];
			size_t n = strlen(optarg);

			snprintf(ms, sizeof(ms), "%s", optarg);
			if (n > 2 && n < sizeof(ms) && !strcmp(ms + n - 2, "ms"))
				ms[n - 2] = 0;
			if (parse_u64(ms, 1, 3600000, &o->record_ms) != 0) {
				fprintf(stderr, "kvm-run: --record-interval '%s': 1 to 3600000 "
					"milliseconds\n", optarg);
				return -1;
			}
			o->record_ms_given = true;
			break;
		}
		case OPT_LAZY:
			if (!optarg || !strcmp(optarg, "prefetch")) {
				o->lazy = 1;
			} else if (!strcmp(optarg, "touch")) {
				o->lazy = 2;
			} else {
				fprintf(stderr, "kvm-run: --lazy='%s': prefetch or touch\n", optarg);
				return -1;
			}
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("kvm-run (%s)\n", PACKAGE_STRING);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvm-run: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if ((o->lazy || o->restore_disk) && !o->restore) {
		/* Name the option given: the user may not know the other. */
		fprintf(stderr, "kvm-run: %s needs --restore\n", o->lazy ? "--lazy" : "--restore-disk");
		return -1;
	}
	if (o->restore && (o->mem_given || o->vcpus_given || o->guest_given || *o->guest_args)) {
		fprintf(stderr, "kvm-run: --restore: memory, vCPUs and the guest come from the "
			"checkpoint (no --mem, --vcpus, --guest, --guest-image, --guest-arg)\n");
		return -1;
	}
	if (o->kboot.kernel && (o->restore || o->guest_given || *o->guest_args)) {
		fprintf(stderr, "kvm-run: --kernel boots Linux instead of a workload guest or a "
			"checkpoint (no --guest, --guest-image, --guest-arg, --restore)\n");
		return -1;
	}
	if (!o->kboot.kernel && (o->kboot.initrd || o->kboot.cmdline)) {
		fprintf(stderr, "kvm-run: --initrd and --append need --kernel\n");
		return -1;
	}
	if (!o->kboot.kernel && o->disk) {
		fprintf(stderr, "kvm-run: --disk and --disk-ro need --kernel (a Linux guest's "
			"virtio-blk disk)\n");
		return -1;
	}
	if (o->record_ms_given && !o->record_dirty) {
		fprintf(stderr, "kvm-run: --record-interval needs --record-dirty\n");
		return -1;
	}
	if (o->kboot.kernel && !o->kboot.cmdline)
		o->kboot.cmdline = "console=ttyS0 reboot=k";
	if (!o->ckpt.dir[0] && (o->ckpt.every_ms || o->ckpt.keep || o->ckpt.chain_max)) {
		fprintf(stderr, "kvm-run: --checkpoint-every, -keep and -chain need "
			"--checkpoint-dir\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char path[4096], rundir[4096], sock[4096], name[64];
	struct restore_info ri;
	struct control *control = NULL;
	struct kvm *kvm = NULL;
	struct virtio_blk *disk = NULL;
	struct dtrace_recorder *rec = NULL;
	struct options o;
	uint64_t entry, deadline = 0;
	struct loader_image image = { NULL, 0 };
	sigset_t set;
	int r, status = EXIT_SETUP;

	if (parse_options(argc, argv, &o) < 0)
		return EXIT_USAGE;
	log_init("kvm-run", o.verbose ? LOG_DEBUG : LOG_INFO);

	/* Blocked before any thread exists, so only kvm__stop_on_signals' thread takes them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (o.restore) {
		char err[512];

		r = o.lazy ? restore__vm_lazy(o.restore, o.restore_disk, o.lazy == 1, &o.cfg, name,
					      sizeof(name), &kvm, &ri, err, sizeof(err)) :
			     restore__vm(o.restore, o.restore_disk, &o.cfg, name, sizeof(name), &kvm,
					 &ri, err, sizeof(err));
		if (r != 0) {
			log_error("restore: %s", err);
			goto out;
		}
		/* A disk named by the checkpoint is opened unlocked: lock it before it runs. */
		if ((r = pc__disk_take(kvm)) != 0)
			goto out;
		if (o.lazy)
			log_info("VM %s restored lazily from checkpoint %llu (%u file%s, %u with a page "
				 "index; %llu pages indexed, %llu to bring in) in %.3f ms (VM made in "
				 "%.3f ms, state loaded in %.3f ms)", kvm->name,
				 (unsigned long long)ri.id, ri.files, ri.files > 1 ? "s" : "",
				 ri.indexed, (unsigned long long)ri.pages, (unsigned long long)ri.absent,
				 ri.index_ns / 1e6, ri.create_ns / 1e6, ri.state_ns / 1e6);
		else
			log_info("VM %s restored from checkpoint %llu (%u file%s, %llu pages)",
				 kvm->name, (unsigned long long)ri.id, ri.files,
				 ri.files > 1 ? "s" : "", (unsigned long long)ri.pages);
		o.paused |= ri.paused;
	} else if (o.kboot.kernel) {
		/* The disk first: a missing, odd-sized or busy image is refused before a VM exists. */
		if (o.disk && (r = virtio_blk__open(o.disk, o.disk_ro ? VIRTIO_BLK_RO : 0,
						    &disk)) != 0)
			goto out;
		if ((r = kvm__create(&o.cfg, &kvm)) != 0) {
			if (r == -ENOENT || r == -ENODEV)
				log_error("KVM is not available on this machine (/dev/kvm)");
			goto out;
		}
		/* Before linux__boot: the ACPI tables declare the disk if there is one. */
		if (disk && (r = virtio_blk__attach(disk, kvm)) != 0)
			goto out;
		disk = NULL;	/* kvm's now */
		if ((r = linux__boot(kvm, &o.kboot)) != 0 || (r = pc__create(kvm)) != 0)
			goto out;
	} else {
		/* The image is read and checked before a VM exists: a bad one costs nothing. */
		if (!o.guest_image && (r = loader__find_guest(o.guest, path, sizeof(path))) != 0)
			goto out;
		if ((r = loader__image_read(o.guest_image ? o.guest_image : path, &image)) != 0)
			goto out;
		if ((r = kvm__create(&o.cfg, &kvm)) != 0) {
			if (r == -ENOENT || r == -ENODEV)
				log_error("KVM is not available on this machine (/dev/kvm)");
			goto out;
		}
		r = loader__image_load(kvm, &image, &entry);
		loader__image_free(&image);
		if (r != 0)
			goto out;
		if ((r = kvm__setup_boot(kvm, o.guest, o.guest_args, entry)) != 0)
			goto out;
	}
	if (o.cfg.name) {
		if ((r = rundir_resolve(o.rundir, rundir, sizeof(rundir))) != 0) {
			log_error("run directory %s: %s", rundir, rundir_strerror(r));
			goto out;
		}
		if ((r = rundir_socket_path(rundir, o.cfg.name, sock, sizeof(sock))) != 0)
			goto out;
		/* The name is this process's alone while the VM lives (lib/rundir.h). */
		if ((r = rundir_reserve(rundir, o.cfg.name, &kvm->reservation, 0)) != 0) {
			log_error("VM %s: %s", o.cfg.name, r == KM_ERR_STATE ?
				  "a VM of that name already runs in this run directory" :
				  km_strerror(r));
			goto out;
		}
		if ((r = control__start_ext(kvm, sock, control__join(migrate__control_table(kvm),
								   checkpoint__control_table(kvm)), &control)) != 0)
			goto out;
		if ((r = rundir_decide_running(&kvm->reservation)) != 0)
			goto out;
		if (kvm->uart && (r = uart__listen_in(kvm->uart, rundir, o.cfg.name)) != 0)
			goto out;
	}
	if (o.ckpt.dir[0]) {
		char err[512];

		if ((r = checkpoint__setup(kvm, &o.ckpt, err, sizeof(err))) != 0) {
			log_error("checkpoints: %s", err);
			goto out;
		}
	}
	if ((r = kvm__stop_on_signals(kvm)) != 0)
		goto out;
	/* Before the vCPUs run: nothing the guest writes escapes the trace. */
	if (o.record_dirty) {
		char err[512];

		if ((r = dtrace_rec__start(kvm, o.record_dirty, o.record_ms, &rec, err,
					   sizeof(err))) != 0) {
			log_error("--record-dirty: %s", err);
			goto out;
		}
	}
	if ((r = o.paused ? kvm__start_paused(kvm) : kvm__start(kvm)) != 0) {
		status = EXIT_GUEST;
		goto out;
	}
	if (o.kboot.kernel)
		log_info("VM %s: %llu MiB, %u vCPU%s, kernel %s (%s)%s%s%s", kvm->name,
			 (unsigned long long)(o.cfg.mem_size >> 20), o.cfg.nr_vcpus,
			 o.cfg.nr_vcpus > 1 ? "s" : "", o.kboot.kernel, o.kboot.cmdline,
			 o.disk ? ", disk " : "", o.disk ? o.disk : "",
			 o.disk_ro ? " (read-only)" : "");
	else if (!o.restore)
		log_info("VM %s: %llu MiB, %u vCPU%s, guest %s%s%s%s", kvm->name,
			 (unsigned long long)(o.cfg.mem_size >> 20), o.cfg.nr_vcpus,
			 o.cfg.nr_vcpus > 1 ? "s" : "", o.guest, *o.guest_args ? " (" : "",
			 o.guest_args, *o.guest_args ? ")" : "");
	if (o.seconds)
		deadline = kvm__now_ns() + o.seconds * 1000000000ULL;
	if (kvm__wait_stopped(kvm, deadline) == KM_ERR_TIMEOUT)
		kvm__request_stop(kvm, KVM_STOP_QUIT, "--seconds %llu elapsed",
				  (unsigned long long)o.seconds);
	kvm__join(kvm);
	/* The trace's last interval reaches the VM's end. */
	(void)dtrace_rec__stop(rec);	/* which logs what it recorded, or why not */
	rec = NULL;
	switch (kvm->stop_reason) {
	case KVM_STOP_DONE:
	case KVM_STOP_QUIT:
	case KVM_STOP_MIGRATED:
	case KVM_STOP_POWEROFF:
	case KVM_STOP_RESET:
		status = 0;
		break;
	default:
		status = EXIT_GUEST;
		log_error("VM %s stopped: %s", kvm->name, kvm->stop_detail);
		break;
	}
	if (!o.quiet)
		stats__print(kvm, stdout);
out:
	loader__image_free(&image);
	dtrace_rec__stop(rec);
	control__stop(control);
	if (kvm) {
		checkpoint__shutdown(kvm);
		migrate__shutdown(kvm);
	}
	kvm__destroy(kvm);
	virtio_blk__destroy(disk);
	return status;
}
