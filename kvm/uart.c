/* The 16550A console UART and its socket. See uart.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "log.h"
#include "kvm/ioport.h"
#include "kvm/kvm.h"
#include "kvm/uart.h"

/* Register offsets and bits, as Linux's <linux/serial_reg.h> names them. */
#define REG_RX_TX	0	/* RBR/THR, DLL with DLAB */
#define REG_IER		1	/* DLM with DLAB */
#define REG_IIR_FCR	2
#define REG_LCR		3
#define REG_MCR		4
#define REG_LSR		5
#define REG_MSR		6
#define REG_SCR		7
#define IER_RDI		0x01
#define IER_THRI	0x02
#define IIR_NO_INT	0x01
#define IIR_THRI	0x02
#define IIR_RDI		0x04
#define IIR_FIFO_ON	0xc0
#define FCR_FIFO_ON	0x01
#define FCR_CLEAR_RX	0x02
#define LCR_DLAB	0x80
#define MCR_OUT2	0x08	/* on a PC, gates the IRQ line */
#define MCR_LOOP	0x10
#define LSR_DR		0x01
#define LSR_THRE_TEMT	0x60
#define MSR_DCD_DSR_CTS	0xb0

struct uart {
	struct kvm *kvm;
	pthread_mutex_t lock;	/* st, client_fd, rx_blocked */
	struct uart_state st;
	int listen_fd;
	int client_fd;		/* -1: no client */
	bool rx_blocked;	/* the socket thread waits for room in the FIFO */
	int wake[2];		/* a byte wakes the socket thread: room, or stop */
	bool stopping;
	pthread_t thread;
	bool thread_started;
	char path[108];
};

/* Under u->lock. */
static uint8_t uart__iir(const struct uart *u)
{
	const struct uart_state *s = &u->st;
	uint8_t fifo = s->fcr & FCR_FIFO_ON ? IIR_FIFO_ON : 0;

	if ((s->ier & IER_RDI) && s->rx_len)
		return fifo | IIR_RDI;
	if ((s->ier & IER_THRI) && s->thri_pending)
		return fifo | IIR_THRI;
	return fifo | IIR_NO_INT;
}

/*
 * The line follows the pending interrupt; OUT2 connects it (loopback
 * disconnects it), as on a PC. ISA interrupts are edge-triggered: a new
 * one needs the line to drop first, which the 8250 driver's IIR loop does.
 * Under u->lock.
 */
static void uart__update_irq(struct uart *u)
{
	struct uart_state *s = &u->st;
	struct kvm_irq_level irq = { .irq = UART_COM1_IRQ };
	uint8_t level = !(uart__iir(u) & IIR_NO_INT) && (s->mcr & MCR_OUT2) && !(s->mcr & MCR_LOOP);

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	irq.level = level;
	log_debug("uart: IRQ %u %s (IER %#x, MCR %#x)", UART_COM1_IRQ, level ? "raised" : "lowered",
		  s->ier, s->mcr);
	if (ioctl(u->kvm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("KVM_IRQ_LINE %u: %s", UART_COM1_IRQ, km_strerror(km_errno()));
}

/* Under u->lock. */
static void uart__rx_push(struct uart *u, uint8_t b)
{
	struct uart_state *s = &u->st;

	if (s->rx_len == UART_FIFO_SIZE)
		return;		/* overrun: only loopback can get here, which may lose bytes */
	s->rx[(s->rx_head + s->rx_len) % UART_FIFO_SIZE] = b;
	s->rx_len++;
}

static void uart__wake(struct uart *u)
{
	ssize_t n = write(u->wake[1], "", 1);

	(void)n;	/* full pipe: a wake-up is already pending */
}

/* A byte the guest transmits. Under u->lock. */
static void uart__tx(struct uart *u, uint8_t b)
{
	if (u->st.mcr & MCR_LOOP) {
		uart__rx_push(u, b);
		return;
	}
	ioport__console_write(u->kvm, &b, 1);
	if (u->client_fd >= 0)
		(void)send(u->client_fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static uint8_t uart__read(struct uart *u, unsigned int reg)
{
	struct uart_state *s = &u->st;
	uint8_t v = 0;

	switch (reg) {
	case REG_RX_TX:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (s->rx_len) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % UART_FIFO_SIZE;
			s->rx_len--;
			if (u->rx_blocked) {
				u->rx_blocked = false;
				uart__wake(u);
			}
		}
		return v;
	case REG_IER:
		return s->lcr & LCR_DLAB ? s->dlm : s->ier;
	case REG_IIR_FCR:
		v = uart__iir(u);
		/* Reading IIR while it names THRE acknowledges it (16550 data sheet). */
		if ((v & 0x0f) == IIR_THRI)
			s->thri_pending = 0;
		return v;
	case REG_LCR:
		return s->lcr;
	case REG_MCR:
		return s->mcr;
	case REG_LSR:
		return LSR_THRE_TEMT | (s->rx_len ? LSR_DR : 0);
	case REG_MSR:
		if (!(s->mcr & MCR_LOOP))
			return MSR_DCD_DSR_CTS;
		/* Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (the driver's probe checks). */
		return (uint8_t)(((s->mcr & 0x01) << 5) | ((s->mcr & 0x02) << 3) |
				 ((s->mcr & 0x04) << 4) | ((s->mcr & 0x08) << 4));
	default:
		return s->scr;
	}
}

static void uart__write(struct uart *u, unsigned int reg, uint8_t v)
{
	struct uart_state *s = &u->st;

	switch (reg) {
	case REG_RX_TX:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return;
		}
		uart__tx(u, v);
		/* Sent at once: the transmitter is empty again, and says so. */
		s->thri_pending = 1;
		return;
	case REG_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return;
		}
		/* Enabling THRE with the holder empty interrupts at once; the driver's start_tx relies on it. */
		if ((v & IER_THRI) && !(s->ier & IER_THRI))
			s->thri_pending = 1;
		s->ier = v & 0x0f;
		return;
	case REG_IIR_FCR:
		s->fcr = v & 0xc9;
		if (v & FCR_CLEAR_RX) {
			s->rx_len = 0;
			s->rx_head = 0;
			if (u->rx_blocked) {
				u->rx_blocked = false;
				uart__wake(u);
			}
		}
		return;
	case REG_LCR:
		s->lcr = v;
		return;
	case REG_MCR:
		s->mcr = v & 0x1f;
		return;
	case REG_SCR:
		s->scr = v;
		return;
	default:
		return;		/* LSR and MSR are read-only */
	}
}

void uart__io(struct uart *u, uint16_t port, bool is_write, uint8_t *data)
{
	unsigned int reg = port - UART_COM1_PORT;

	pthread_mutex_lock(&u->lock);
	if (is_write)
		uart__write(u, reg, *data);
	else
		*data = uart__read(u, reg);
	uart__update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart__drop_client(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	if (u->client_fd >= 0)
		close(u->client_fd);
	u->client_fd = -1;
	u->rx_blocked = false;
	pthread_mutex_unlock(&u->lock);
}

static void uart__accept(struct uart *u)
{
	unsigned int uid;
	int fd = accept4(u->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	bool busy;

	if (fd < 0)
		return;
	if (chan_unix_peer_check(fd, &uid) != 0) {
		log_warn("console %s: refused a client of user %u", u->path, uid);
		close(fd);
		return;
	}
	pthread_mutex_lock(&u->lock);
	busy = u->client_fd >= 0;
	if (!busy)
		u->client_fd = fd;
	pthread_mutex_unlock(&u->lock);
	if (busy) {
		static const char msg[] = "kvm-run: the console has a client already\n";

		(void)send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
	}
}

/* Moves what the client sent into the receive FIFO, as much as fits. */
static void uart__receive(struct uart *u)
{
	uint8_t buf[UART_FIFO_SIZE];
	size_t room;
	ssize_t n, i;

	pthread_mutex_lock(&u->lock);
	room = UART_FIFO_SIZE - u->st.rx_len;
	pthread_mutex_unlock(&u->lock);
	if (!room)
		return;
	/* The client fd is only closed by this thread, so it stays valid unlocked. */
	n = recv(u->client_fd, buf, room, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		uart__drop_client(u);
		return;
	}
	pthread_mutex_lock(&u->lock);
	for (i = 0; i < n; i++)
		uart__rx_push(u, buf[i]);
	uart__update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

/*
 * The socket thread: accepts clients and feeds their bytes to the FIFO.
 * A client is polled for input only while the FIFO has room, so that what
 * it sent waits in the socket (flow control) instead of being dropped;
 * the guest's read of RBR wakes this thread when room appears.
 */
static void *uart__thread(void *arg)
{
	struct uart *u = arg;
	struct pollfd p[3];
	char drain[64];

	for (;;) {
		pthread_mutex_lock(&u->lock);
		if (u->stopping) {
			pthread_mutex_unlock(&u->lock);
			break;
		}
		p[0] = (struct pollfd){ .fd = u->wake[0], .events = POLLIN };
		p[1] = (struct pollfd){ .fd = u->listen_fd, .events = POLLIN };
		p[2] = (struct pollfd){ .fd = -1 };
		if (u->client_fd >= 0) {
			u->rx_blocked = u->st.rx_len == UART_FIFO_SIZE;
			if (!u->rx_blocked)
				p[2] = (struct pollfd){ .fd = u->client_fd, .events = POLLIN };
		}
		pthread_mutex_unlock(&u->lock);
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("console %s: poll: %s", u->path, km_strerror(km_errno()));
			break;
		}
		if (p[0].revents)
			while (read(u->wake[0], drain, sizeof(drain)) > 0)
				;
		if (p[1].revents & POLLIN)
			uart__accept(u);
		if (p[2].revents)
			uart__receive(u);
	}
	return NULL;
}

void uart__get_state(struct uart *u, struct uart_state *st)
{
	pthread_mutex_lock(&u->lock);
	*st = u->st;
	pthread_mutex_unlock(&u->lock);
}

int uart__set_state(struct uart *u, const struct uart_state *st)
{
	if (st->rx_len > UART_FIFO_SIZE || st->rx_head >= UART_FIFO_SIZE ||
	    st->thri_pending > 1 || st->irq_level > 1)
		return KM_ERR_CORRUPT;
	pthread_mutex_lock(&u->lock);
	u->st = *st;
	/* From low, so that uart__update_irq drives the line to the state's level. */
	u->st.irq_level = 0;
	uart__update_irq(u);
	pthread_mutex_unlock(&u->lock);
	uart__wake(u);		/* the FIFO's room changed: the socket thread polls again */
	return 0;
}

int uart__create(struct kvm *kvm)
{
	struct uart *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return -ENOMEM;
	u->kvm = kvm;
	u->listen_fd = u->client_fd = -1;
	if (pipe2(u->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
		r = km_errno();
		free(u);
		return r;
	}
	pthread_mutex_init(&u->lock, NULL);
	kvm->uart = u;
	return 0;
}

int uart__listen(struct uart *u, const char *path)
{
	char addr[128], err[256];
	int fd, r;

	if (strlen(path) >= sizeof(u->path)) {
		log_error("console socket %s: path too long", path);
		return KM_ERR_TOO_LARGE;
	}
	snprintf(addr, sizeof(addr), "unix:%s", path);
	if ((fd = chan_listen(addr, err, sizeof(err))) < 0) {
		log_error("console socket: %s", err);
		return fd;
	}
	snprintf(u->path, sizeof(u->path), "%s", path);
	u->listen_fd = fd;
	if ((r = pthread_create(&u->thread, NULL, uart__thread, u)) != 0) {
		log_error("console socket: pthread_create: %s", strerror(r));
		return -r;
	}
	u->thread_started = true;
	return 0;
}

int uart__listen_in(struct uart *u, const char *rundir, const char *name)
{
	char path[sizeof(u->path)];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s.console", rundir, name) >= sizeof(path)) {
		log_error("console socket %s/%s.console: path too long", rundir, name);
		return KM_ERR_TOO_LARGE;
	}
	return uart__listen(u, path);
}

void uart__destroy(struct uart *u)
{
	if (!u)
		return;
	if (u->thread_started) {
		pthread_mutex_lock(&u->lock);
		u->stopping = true;
		pthread_mutex_unlock(&u->lock);
		uart__wake(u);
		pthread_join(u->thread, NULL);
	}
	if (u->listen_fd >= 0) {
		close(u->listen_fd);
		unlink(u->path);
	}
	if (u->client_fd >= 0)
		close(u->client_fd);
	close(u->wake[0]);
	close(u->wake[1]);
	pthread_mutex_destroy(&u->lock);
	free(u);
}
