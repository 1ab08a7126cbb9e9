/* Legacy PC devices: 8250 UART, i8042 (reset only), CMOS/RTC, POST port, firmware debug port. */
#ifndef VMM_LEGACY_H
#define VMM_LEGACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct uart;
struct i8042;
struct cmos;

/* Console sink: called on the vCPU thread for each byte the guest transmits. */
typedef void (*uart_out_fn)(void *opaque, const uint8_t *buf, size_t len);

int uart_create(struct vm *vm, uint16_t port, uint32_t irq, uart_out_fn out, void *opaque,
		struct uart **out_uart) __attribute__((warn_unused_result));
void uart_destroy(struct uart *uart);
/* Queues host input for the guest; returns bytes accepted (the FIFO is bounded). */
size_t uart_input(struct uart *uart, const uint8_t *buf, size_t len);

int i8042_create(struct vm *vm, struct i8042 **out) __attribute__((warn_unused_result));
void i8042_destroy(struct i8042 *dev);

int cmos_create(struct vm *vm, struct cmos **out) __attribute__((warn_unused_result));
void cmos_destroy(struct cmos *dev);

/* Firmware debug console (OVMF's debug builds): port 0x402, reads 0xE9, lines logged at debug. */
#define DEBUG_PORT	 0x402
#define DEBUG_PORT_MAGIC 0xe9
#define DEBUG_PORT_LINE	 200

struct debug_port;
struct debug_port_line {
	char buf[DEBUG_PORT_LINE + 1];
	int len;
};
/* Adds one guest byte; true when the line (buf[0..len)) is complete: log it, empty it. */
bool debug_port_line_feed(struct debug_port_line *l, uint8_t c);
int debug_port_create(struct vm *vm, struct debug_port **out) __attribute__((warn_unused_result));
void debug_port_destroy(struct debug_port *d);

#endif
