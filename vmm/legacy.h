/* Legacy PC devices: 8250 UART, i8042 (reset only), CMOS/RTC, POST port. */
#ifndef VMM_LEGACY_H
#define VMM_LEGACY_H

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

#endif
