/*
 * A 16550A UART at COM1 (0x3f8, IRQ 4) as the console of a Linux guest:
 * what Linux's 8250 driver needs (THR/RBR, IER, IIR/FCR, LCR, MCR, LSR,
 * MSR, SCR, DLL/DLM, the 16-byte receive FIFO, loopback), transmitting at
 * once (the transmitter is always empty). Output goes to the VM's console
 * sink (kvm->console_fd, ioport.c) and to the console socket's client;
 * input comes from that client.
 *
 * The console socket: RUNDIR/NAME.console, a unix stream socket (mode
 * 0600, this user and root only, as the control socket) serving one client
 * at a time; a second is refused until the first leaves. Bytes the client
 * sends are the guest's received characters, handed over as fast as the
 * guest reads them (never dropped: the socket is read only while the
 * receive FIFO has room). The client also gets the guest's output from
 * the moment it connects, dropped rather than stalling the guest if it
 * does not read.
 */
#ifndef KM_UART_H
#define KM_UART_H

#include <stdbool.h>
#include <stdint.h>

struct kvm;

#define UART_COM1_PORT	0x3f8
#define UART_COM1_IRQ	4
#define UART_FIFO_SIZE	16

/*
 * The guest-visible state, all of it: a plain struct of bytes, so that a
 * migration or checkpoint record carries it as it is (ST_VM_UART, state.h).
 */
struct uart_state {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	uint8_t thri_pending;	/* the "THR empty" interrupt, until IIR is read or THR written */
	uint8_t irq_level;	/* the level last set on the IRQ line */
	uint8_t rx_len, rx_head;
	uint8_t rx[UART_FIFO_SIZE];
};

struct uart;

/* Makes the UART of kvm (kvm->uart, freed by kvm__destroy). 0 or a negative error. */
int uart__create(struct kvm *kvm);
/*
 * Listens for the console client at path (a stale socket file is
 * replaced; the VM's name is held in the run directory, so no live VM
 * uses it). Returns 0 or a negative error, logged.
 */
int uart__listen(struct uart *u, const char *path);
/*
 * The same at RUNDIR/NAME.console, where kvm-run and a migration's
 * destination both put it (documented in kvm-run.1).
 */
int uart__listen_in(struct uart *u, const char *rundir, const char *name);
/* Stops the socket thread, removes the socket file and frees. NULL-safe. */
void uart__destroy(struct uart *u);

/*
 * The guest-visible state, for a migration or checkpoint (the VM paused).
 * uart__set_state refuses a state no UART could be in (KM_ERR_CORRUPT),
 * and raises the IRQ line again if it was up: the line's level is the
 * VMM's to drive, the irqchip records only what it latched.
 */
void uart__get_state(struct uart *u, struct uart_state *st);
int uart__set_state(struct uart *u, const struct uart_state *st);

/* Whether port belongs to the UART. */
static inline bool uart__owns(uint16_t port)
{
	return port >= UART_COM1_PORT && port < UART_COM1_PORT + 8;
}

/* A guest access of size 1 at port (uart__owns): in fills *data, out reads it. */
void uart__io(struct uart *u, uint16_t port, bool is_write, uint8_t *data);

#endif
