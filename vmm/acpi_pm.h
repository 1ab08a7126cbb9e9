/*
 * The ACPI PM block (fixed hardware, as the FADT describes it): PM1a event
 * (status, enable), PM1a control (SCI_EN, sleep type and enable) and the
 * 3.579545 MHz PM timer, at ACPI_PM_BASE. Writing SLP_EN with the S5 type
 * ends the VM as a power-off.
 */
#ifndef VMM_ACPI_PM_H
#define VMM_ACPI_PM_H

#include <stdbool.h>
#include <stdint.h>

struct vm;
struct acpi_pm;

#define ACPI_PM_BASE	 0x600 /* where q35's firmware puts PMBASE too */
#define ACPI_PM_LEN	 12    /* event 0-3, control 4-5, reserved 6-7, timer 8-11 */
#define ACPI_PM_SCI_IRQ	 9
#define ACPI_PM_S5_TYPE	 0 /* SLP_TYP of S5, as the DSDT's \_S5 says */
#define ACPI_PM_TIMER_HZ 3579545ULL

/* PM1 status/enable bits. */
#define ACPI_PM1_TMR	(1u << 0)
#define ACPI_PM1_GBL	(1u << 5)
#define ACPI_PM1_PWRBTN (1u << 8)
#define ACPI_PM1_RTC	(1u << 10)
#define ACPI_PM1_WAK	(1u << 15)
/* PM1 control bits. */
#define ACPI_PM1_SCI_EN	       (1u << 0)
#define ACPI_PM1_SLP_TYP_SHIFT 10
#define ACPI_PM1_SLP_EN	       (1u << 13)

/* The registers, apart from the vm: what the unit tests drive. */
struct acpi_pm_regs {
	uint16_t sts, en, cnt;
};

enum acpi_pm_event {
	ACPI_PM_EV_NONE,
	ACPI_PM_EV_POWEROFF,	/* SLP_EN with the S5 type */
	ACPI_PM_EV_SLEEP_OTHER, /* SLP_EN with a type we do not offer: ignored */
};

/*
 * One guest access of len bytes at offset off of the block (any offset and
 * length: bytes outside the registers read 0xff and are not written).
 * now_ns is a monotonic clock for the timer. Returns what the guest asked.
 */
enum acpi_pm_event acpi_pm_regs_access(struct acpi_pm_regs *r, uint64_t off, uint8_t *data,
				       uint32_t len, bool is_write, uint64_t now_ns);
/* The SCI line: an enabled status bit is set. */
bool acpi_pm_regs_sci(const struct acpi_pm_regs *r);

int acpi_pm_create(struct vm *vm, struct acpi_pm **out) __attribute__((warn_unused_result));
void acpi_pm_destroy(struct acpi_pm *pm);

#endif
