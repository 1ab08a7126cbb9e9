/*
 * 8250/16550A UART: enough for Linux's serial driver and earlyprintk.
 * Transmission is instant, so THR is always empty; the THRE interrupt is
 * re-armed after every write so interrupt-driven output keeps flowing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "bus.h"
#include "legacy.h"
#include "log.h"
#include "vm.h"

#define UART_FIFO 1024

/* Registers (offset from base). */
#define UART_RX	 0 /* DLAB=0 read */
#define UART_TX	 0 /* DLAB=0 write */
#define UART_IER 1
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI	 0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI	 0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02

struct uart {
	struct vm *vm;
	struct bus_region *region;
	uint32_t irq;
	uart_out_fn out;
	void *opaque;
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	bool thr_pending; /* THRE interrupt armed and not yet seen through IIR */
	bool irq_level;
	uint8_t fifo[UART_FIFO];
	uint32_t head, count;
};

static uint8_t uart_iir(struct uart *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((u->ier & IER_RDI) && u->count)
		return IIR_RDI | fifo;
	if ((u->ier & IER_THRI) && u->thr_pending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

/* Called with the lock held. */
static void uart_update_irq(struct uart *u)
{
	bool level = (uart_iir(u) & IIR_NONE) == 0;

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	if (vm_irq_line(u->vm, u->irq, level))
		log_ratelimited(LOG_WARN, "uart", "cannot set IRQ %u", u->irq);
}

static uint8_t uart_msr(struct uart *u)
{
	if (u->mcr & MCR_LOOP) {
		/* Loopback: modem outputs appear on the inputs (Linux probes this). */
		return ((u->mcr & 0x02) << 3) | ((u->mcr & 0x01) << 5) | ((u->mcr & 0x04) << 4) |
		       ((u->mcr & 0x08) << 4);
	}
	return 0xb0; /* DCD | DSR | CTS */
}

static void uart_write_reg(struct uart *u, uint64_t off, uint8_t v)
{
	switch (off) {
	case UART_TX:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
			break;
		}
		if (!(u->mcr & MCR_LOOP)) {
			/* The sink may block (a slow terminal); the guest waits as on real HW. */
			pthread_mutex_unlock(&u->lock);
			u->out(u->opaque, &v, 1);
			pthread_mutex_lock(&u->lock);
		}
		u->thr_pending = true;
		break;
	case UART_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			break;
		}
		if ((v & IER_THRI) && !(u->ier & IER_THRI))
			u->thr_pending = true;
		u->ier = v & 0x0f;
		break;
	case UART_FCR:
		u->fcr = v;
		if (v & FCR_CLEAR_RX)
			u->count = 0;
		break;
	case UART_LCR:
		u->lcr = v;
		break;
	case UART_MCR:
		u->mcr = v & 0x1f;
		break;
	case UART_SCR:
		u->scr = v;
		break;
	default:
		break;
	}
}

static uint8_t uart_read_reg(struct uart *u, uint64_t off)
{
	uint8_t v = 0;

	switch (off) {
	case UART_RX:
		if (u->lcr & LCR_DLAB)
			return u->dll;
		if (u->count) {
			v = u->fifo[u->head];
			u->head = (u->head + 1) % UART_FIFO;
			u->count--;
		}
		return v;
	case UART_IER:
		return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case UART_IIR:
		v = uart_iir(u);
		if ((v & 0x0f) == IIR_THRI)
			u->thr_pending = false;
		return v;
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		return LSR_THRE | LSR_TEMT | (u->count ? LSR_DR : 0);
	case UART_MSR:
		return uart_msr(u);
	case UART_SCR:
		return u->scr;
	default:
		return 0xff;
	}
}

static void uart_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct uart *u = opaque;

	pthread_mutex_lock(&u->lock);
	if (is_write)
		uart_write_reg(u, off, data[0]);
	else
		data[0] = uart_read_reg(u, off);
	if (!is_write)
		bus_read_zero_upper(data, len);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

size_t uart_input(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	while (n < len && u->count < UART_FIFO) {
		u->fifo[(u->head + u->count) % UART_FIFO] = buf[n++];
		u->count++;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

int uart_create(struct vm *vm, uint16_t port, uint32_t irq, uart_out_fn out, void *opaque,
		struct uart **out_uart)
{
	struct uart *u = calloc(1, sizeof(*u));
	int ret;

	*out_uart = NULL;
	if (!u)
		return -ENOMEM;
	u->vm = vm;
	u->irq = irq;
	u->out = out;
	u->opaque = opaque;
	u->lcr = 0x03;
	u->mcr = 0x08;
	pthread_mutex_init(&u->lock, NULL);
	ret = bus_register(vm_pio_bus(vm), port, 8, uart_access, u, &u->region);
	if (ret) {
		uart_destroy(u);
		return ret;
	}
	*out_uart = u;
	return 0;
}

void uart_destroy(struct uart *u)
{
	if (!u)
		return;
	if (u->region)
		bus_unregister(vm_pio_bus(u->vm), u->region);
	pthread_mutex_destroy(&u->lock);
	free(u);
}
