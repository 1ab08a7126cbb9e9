/*
 * The Q35 MCH's registers on the host bridge (00:00.0) that OVMF writes:
 * PCIEXBAR (where ECAM lives), the PAM registers (BIOS area enables) and the
 * SMRAM controls. They read back what was written; none changes the memory
 * map: ECAM is always at Q35_ECAM_BASE (OVMF's fixed choice), the BIOS area
 * is always RAM, and there is no SMM.
 */
#include "log.h"
#include "pci_priv.h"
#include "q35.h"

#define PCIEXBAR_EN	 0x1ULL
#define PCIEXBAR_LENGTH	 0x6ULL /* 0: 256 buses */
#define PCIEXBAR_BASE_LO 0xf0000000u

static void mch_config_write(struct pci_dev *dev, uint32_t off, uint32_t len)
{
	uint64_t bar;

	if (off + len <= Q35_MCH_PCIEXBAR || off >= Q35_MCH_PCIEXBAR + 8)
		return;
	bar = pci_get_le(&dev->cfg[Q35_MCH_PCIEXBAR], 4) |
	      (uint64_t)pci_get_le(&dev->cfg[Q35_MCH_PCIEXBAR + 4], 4) << 32;
	if ((bar & PCIEXBAR_EN) &&
	    ((bar & ~(PCIEXBAR_EN | PCIEXBAR_LENGTH)) != Q35_ECAM_BASE || (bar & PCIEXBAR_LENGTH)))
		log_ratelimited(LOG_WARN, "q35",
				"PCIEXBAR 0x%llx ignored: ECAM stays at 0x%llx, 256 buses",
				(unsigned long long)bar, (unsigned long long)Q35_ECAM_BASE);
}

static const struct pci_dev_ops mch_ops = {.config_write = mch_config_write};

void q35_mch_setup(struct pci_bus *pbus)
{
	struct pci_dev *mch = &pbus->bridge;

	pthread_mutex_lock(&pbus->lock);
	pci_put_le(&mch->wmask[Q35_MCH_PCIEXBAR], 4, PCIEXBAR_BASE_LO | 0x7);
	pci_put_le(&mch->wmask[Q35_MCH_PCIEXBAR + 4], 4, 0xf); /* base bits 35:32 */
	/* What reset leaves: ECAM where it is served, 256 buses, enabled. */
	pci_put_le(&mch->cfg[Q35_MCH_PCIEXBAR], 4, (uint32_t)Q35_ECAM_BASE | PCIEXBAR_EN);
	for (int i = 0; i < 7; i++)
		mch->wmask[Q35_MCH_PAM0 + i] = 0x33;
	mch->wmask[Q35_MCH_SMRAM] = 0x78;
	mch->wmask[Q35_MCH_ESMRAMC] = 0x0f;
	mch->ops = &mch_ops;
	pthread_mutex_unlock(&pbus->lock);
}
