/*
 * UEFI boot with an unmodified OVMF (docs/boot.md, "UEFI boot"): the
 * firmware image below 4 GiB, fw_cfg with what OVMF reads, and the Q35
 * chipset pieces its platform code probes. The vCPU starts at the reset
 * vector; OVMF loads the kernel from fw_cfg and starts it through its EFI stub.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "machine_priv.h"
#include "vmm/acpi_pm.h"
#include "vmm/firmware.h"
#include "vmm/fw_cfg.h"
#include "vmm/legacy.h"
#include "vmm/q35.h"
#include "vmm/vm.h"

/* Well-known fw_cfg keys of the kernel direct-boot interface (QEMU's numbering). */
#define FW_CFG_NOGRAPHIC    0x04
#define FW_CFG_KERNEL_SIZE  0x08
#define FW_CFG_INITRD_SIZE  0x0b
#define FW_CFG_BOOT_MENU    0x0e
#define FW_CFG_MAX_CPUS	    0x0f
#define FW_CFG_KERNEL_DATA  0x11
#define FW_CFG_INITRD_DATA  0x12
#define FW_CFG_CMDLINE_SIZE 0x14
#define FW_CFG_CMDLINE_DATA 0x15
#define FW_CFG_SETUP_SIZE   0x17
#define FW_CFG_SETUP_DATA   0x18

struct machine_uefi {
	struct firmware *fw;
	struct fw_cfg *fc;
	struct pci_ecam *ecam;
	struct ich9_lpc *lpc;
	struct debug_port *dbg;
};

static int add_le(struct fw_cfg *fc, uint16_t key, uint64_t v, size_t len)
{
	uint8_t b[8];

	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return fw_cfg_add_item(fc, key, b, len);
}

/* Size item (le32) then data item. */
static int add_blob(struct fw_cfg *fc, uint16_t size_key, uint16_t data_key, const void *data,
		    size_t len)
{
	int ret = add_le(fc, size_key, len, 4);

	return ret ? ret : fw_cfg_add_item(fc, data_key, data, len);
}

static int uefi_fw_cfg_platform(struct machine *m, const struct machine_config *cfg, char *err,
				size_t errlen)
{
	struct machine_uefi *u = m->uefi;
	struct boot_e820_entry e820[BOOT_E820_MAX];
	struct boot_acpi_blobs *acpi = NULL;
	struct guest_mem *mem = vm_mem(m->vm);
	struct boot_acpi cfg_acpi;
	struct boot_ram ram;
	char why[160];
	int n, ret;

	mem_layout(mem, &ram.lo_size, &ram.hi_size);
	n = boot_uefi_e820(e820, BOOT_E820_MAX, &ram);
	if (n < 0) {
		snprintf(err, errlen, "cannot build the UEFI memory map: %s", strerror(-n));
		return n;
	}
	ret = add_le(u->fc, FW_CFG_RAM_SIZE, mem_ram_size(mem), 8);
	if (!ret)
		ret = add_le(u->fc, FW_CFG_NB_CPUS, cfg->cpus, 2);
	if (!ret)
		ret = add_le(u->fc, FW_CFG_MAX_CPUS, cfg->cpus, 2);
	if (!ret)
		ret = add_le(u->fc, FW_CFG_NOGRAPHIC, 1, 2);
	if (!ret)
		ret = add_le(u->fc, FW_CFG_BOOT_MENU, 0, 2);
	if (!ret)
		ret = fw_cfg_add_file(u->fc, "etc/e820", e820, n * sizeof(e820[0]), NULL);
	if (ret) {
		snprintf(err, errlen, "cannot fill fw_cfg: %s", strerror(-ret));
		return ret;
	}
	acpi = malloc(sizeof(*acpi));
	if (!acpi)
		return -ENOMEM;
	machine_acpi_config(&cfg_acpi, mem);
	ret = boot_acpi_blobs_build(acpi, &cfg_acpi, cfg->cpus, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "cannot build the ACPI tables: %s", why);
		goto out;
	}
	ret = fw_cfg_add_file(u->fc, BOOT_ACPI_FILE_RSDP, acpi->rsdp, sizeof(acpi->rsdp), NULL);
	if (!ret)
		ret = fw_cfg_add_file(u->fc, BOOT_ACPI_FILE_TABLES, acpi->tables,
				      sizeof(acpi->tables), NULL);
	if (!ret)
		ret = fw_cfg_add_file(u->fc, BOOT_ACPI_FILE_LOADER, acpi->loader, acpi->loader_len,
				      NULL);
	if (ret)
		snprintf(err, errlen, "cannot add the ACPI tables to fw_cfg: %s", strerror(-ret));
out:
	free(acpi);
	return ret;
}

static int uefi_fw_cfg_kernel(struct machine *m, const struct machine_config *cfg, char *err,
			      size_t errlen)
{
	struct fw_cfg *fc = m->uefi->fc;
	struct loaded_file kernel = {0}, initrd = {0};
	const char *cmdline = cfg->cmdline ? cfg->cmdline : "";
	size_t setup = 0;
	char why[200];
	int ret;

	ret = machine_load_boot_files(cfg, &kernel, &initrd, err, errlen);
	if (ret)
		goto out;
	ret = boot_uefi_split(kernel.data, kernel.size, &setup, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "cannot boot kernel '%s' through UEFI: %s", cfg->kernel, why);
		goto out;
	}
	ret = add_blob(fc, FW_CFG_SETUP_SIZE, FW_CFG_SETUP_DATA, kernel.data, setup);
	if (!ret)
		ret = add_blob(fc, FW_CFG_KERNEL_SIZE, FW_CFG_KERNEL_DATA, kernel.data + setup,
			       kernel.size - setup);
	if (!ret && initrd.size)
		ret =
		    add_blob(fc, FW_CFG_INITRD_SIZE, FW_CFG_INITRD_DATA, initrd.data, initrd.size);
	if (!ret)
		ret = add_blob(fc, FW_CFG_CMDLINE_SIZE, FW_CFG_CMDLINE_DATA, cmdline,
			       strlen(cmdline) + 1);
	if (ret)
		snprintf(err, errlen, "cannot hand the kernel to fw_cfg: %s", strerror(-ret));
out:
	machine_unload_file(&kernel);
	machine_unload_file(&initrd);
	return ret;
}

int machine_uefi_setup(struct machine *m, const struct machine_config *cfg, char *err,
		       size_t errlen)
{
	struct machine_uefi *u = calloc(1, sizeof(*u));
	int ret;

	if (!u)
		return -ENOMEM;
	m->uefi = u;
	ret = firmware_load(&u->fw, cfg->firmware, err, errlen);
	if (ret)
		return ret;
	ret = firmware_map(u->fw, m->vm);
	if (ret) {
		snprintf(err, errlen, "cannot map firmware '%s': %s", cfg->firmware,
			 strerror(-ret));
		return ret;
	}
	ret = fw_cfg_create(&u->fc, vm_mem(m->vm));
	if (ret) {
		snprintf(err, errlen, "cannot create fw_cfg: %s", strerror(-ret));
		return ret;
	}
	ret = uefi_fw_cfg_platform(m, cfg, err, errlen);
	if (!ret)
		ret = uefi_fw_cfg_kernel(m, cfg, err, errlen);
	if (ret)
		return ret;
	q35_mch_setup(m->pci);
	ret = fw_cfg_attach(u->fc, m->vm);
	if (!ret)
		ret = pci_ecam_create(&u->ecam, m->pci, vm_mmio_bus(m->vm));
	if (!ret)
		ret = ich9_lpc_create(&u->lpc, m->pci, ACPI_PM_BASE);
	if (!ret)
		ret = debug_port_create(m->vm, &u->dbg);
	if (ret)
		snprintf(err, errlen, "cannot create the UEFI platform devices: %s",
			 strerror(-ret));
	return ret;
}

void machine_uefi_detach(struct machine_uefi *u)
{
	if (!u)
		return;
	debug_port_destroy(u->dbg);
	u->dbg = NULL;
	ich9_lpc_destroy(u->lpc);
	u->lpc = NULL;
	pci_ecam_destroy(u->ecam);
	u->ecam = NULL;
	fw_cfg_destroy(u->fc);
	u->fc = NULL;
}

void machine_uefi_destroy(struct machine_uefi *u)
{
	if (!u)
		return;
	machine_uefi_detach(u);
	firmware_destroy(u->fw);
	free(u);
}
