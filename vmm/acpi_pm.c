/*
 * ACPI PM block: PM1a event/control registers and the PM timer on the PIO
 * bus, the SCI on its IOAPIC pin. Guest-driven: any access width and offset
 * is accepted, bytes outside the registers are ignored.
 */
#include "acpi_pm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "bus.h"
#include "log.h"
#include "vm.h"

#define PM_STS_BITS (ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_RTC | ACPI_PM1_WAK)
#define PM_EN_BITS  (ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_RTC)
/* SCI_EN, BM_RLD, GBL_RLS, SLP_TYP: what the control register keeps. */
#define PM_CNT_BITS (0x0007u | (7u << ACPI_PM1_SLP_TYP_SHIFT))

struct acpi_pm {
	struct vm *vm;
	struct bus_region *region;
	pthread_mutex_t lock;
	struct acpi_pm_regs regs;
	bool sci;
};

static uint32_t pm_timer(uint64_t now_ns)
{
	/* 3.579545 MHz, 32 bits wide (FADT TMR_VAL_EXT), wrapping. */
	return (uint32_t)((unsigned __int128)now_ns * ACPI_PM_TIMER_HZ / 1000000000ULL);
}

static uint8_t pm_read_byte(const struct acpi_pm_regs *r, uint64_t at, uint32_t tmr)
{
	switch (at) {
	case 0:
	case 1:
		return (uint8_t)(r->sts >> (8 * at));
	case 2:
	case 3:
		return (uint8_t)(r->en >> (8 * (at - 2)));
	case 4:
	case 5:
		/* Always in ACPI mode: SCI_EN reads 1; SLP_EN is write-only. */
		return (uint8_t)((r->cnt | ACPI_PM1_SCI_EN) >> (8 * (at - 4)));
	case 6:
	case 7:
		return 0;
	case 8:
	case 9:
	case 10:
	case 11:
		return (uint8_t)(tmr >> (8 * (at - 8)));
	default:
		return 0xff;
	}
}

static void pm_write_byte(struct acpi_pm_regs *r, uint64_t at, uint8_t v, uint16_t *cnt_written)
{
	unsigned int sh;

	switch (at) {
	case 0:
	case 1: /* write 1 to clear */
		sh = 8 * (unsigned int)at;
		r->sts &= (uint16_t) ~(((unsigned int)v << sh) & PM_STS_BITS);
		break;
	case 2:
	case 3:
		sh = 8 * (unsigned int)(at - 2);
		r->en =
		    (uint16_t)((r->en & ~(0xffu << sh)) | (((unsigned int)v << sh) & PM_EN_BITS));
		break;
	case 4:
	case 5:
		sh = 8 * (unsigned int)(at - 4);
		*cnt_written =
		    (uint16_t)((*cnt_written & ~(0xffu << sh)) | ((unsigned int)v << sh));
		break;
	default: /* reserved bytes and the read-only timer */
		break;
	}
}

enum acpi_pm_event acpi_pm_regs_access(struct acpi_pm_regs *r, uint64_t off, uint8_t *data,
				       uint32_t len, bool is_write, uint64_t now_ns)
{
	uint32_t tmr = pm_timer(now_ns);
	uint16_t cnt = r->cnt;
	bool cnt_touched = false;
	uint64_t at;

	for (uint32_t i = 0; i < len; i++) {
		if (__builtin_add_overflow(off, i, &at) || at >= ACPI_PM_LEN) {
			if (!is_write)
				data[i] = 0xff;
			continue;
		}
		if (!is_write) {
			data[i] = pm_read_byte(r, at, tmr);
			continue;
		}
		pm_write_byte(r, at, data[i], &cnt);
		cnt_touched |= at == 4 || at == 5;
	}
	if (!cnt_touched)
		return ACPI_PM_EV_NONE;
	r->cnt = cnt & PM_CNT_BITS;
	if (!(cnt & ACPI_PM1_SLP_EN))
		return ACPI_PM_EV_NONE;
	if (((cnt >> ACPI_PM1_SLP_TYP_SHIFT) & 7) == ACPI_PM_S5_TYPE)
		return ACPI_PM_EV_POWEROFF;
	return ACPI_PM_EV_SLEEP_OTHER;
}

bool acpi_pm_regs_sci(const struct acpi_pm_regs *r)
{
	return (r->sts & r->en & PM_EN_BITS) != 0;
}

static uint64_t pm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Called with pm->lock held: drive the SCI pin when its level changes. */
static void pm_update_sci(struct acpi_pm *pm)
{
	bool level = acpi_pm_regs_sci(&pm->regs);

	if (level != pm->sci) {
		pm->sci = level;
		vm_irq_line(pm->vm, ACPI_PM_SCI_IRQ, level);
	}
}

static void pm_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;
	enum acpi_pm_event ev;

	if (is_write)
		vm_note_acpi_pm_used(pm->vm);
	pthread_mutex_lock(&pm->lock);
	ev = acpi_pm_regs_access(&pm->regs, off, data, len, is_write, pm_now_ns());
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	if (ev == ACPI_PM_EV_POWEROFF) {
		pr_info("acpi", "the guest entered S5 (ACPI power off)");
		vm_request_exit(pm->vm, VM_EXIT_POWEROFF);
	} else if (ev == ACPI_PM_EV_SLEEP_OTHER) {
		log_ratelimited(LOG_WARN, "acpi", "sleep type %u requested: not offered, ignored",
				(pm->regs.cnt >> ACPI_PM1_SLP_TYP_SHIFT) & 7);
	}
}

int acpi_pm_create(struct vm *vm, struct acpi_pm **out)
{
	struct acpi_pm *pm = calloc(1, sizeof(*pm));
	int ret;

	*out = NULL;
	if (!pm)
		return -ENOMEM;
	pm->vm = vm;
	pthread_mutex_init(&pm->lock, NULL);
	ret = bus_register(vm_pio_bus(vm), ACPI_PM_BASE, ACPI_PM_LEN, pm_access, pm, &pm->region);
	if (ret) {
		acpi_pm_destroy(pm);
		return ret;
	}
	*out = pm;
	return 0;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	if (!pm)
		return;
	if (pm->region)
		bus_unregister(vm_pio_bus(pm->vm), pm->region);
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}
