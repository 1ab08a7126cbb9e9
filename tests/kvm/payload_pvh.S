/*
 * A tiny ELF with a PVH note for tests/kvm. It starts in 32-bit protected
 * mode, checks hvm_start_info, starts every other vCPU with INIT-SIPI (each
 * AP says hello from real mode), switches to long mode on its own page
 * tables, writes a line from there and resets through the i8042.
 * Built with -DPAYLOAD_IDLE (payload_idle.elf) it halts there instead: an
 * idle guest for the overhead benchmark.
 */
#define UART	0x3f8
#define ICR_LO	0xfee00300
#define ICR_HI	0xfee00310
#define AP_BASE	0x8000		/* SIPI vector 0x08 */
#define AP_COUNT 0x9000		/* APs increment this */
#define PML4	0x200000
#define PDPT	0x201000
#define PD	0x202000

	.section .note.pvh, "a"
	.p2align 2
	.long	4			/* namesz */
	.long	8			/* descsz */
	.long	18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.quad	pvh_start

	.text
	.code32
	.globl	pvh_start
pvh_start:
	cmpl	$0x336ec578, (%ebx)	/* hvm_start_info magic */
	jne	bad_info
	mov	$msg_entry, %esi
	call	puts32

	/* vCPU count from CPUID.1:EBX[23:16], set by the VMM. */
	mov	$1, %eax
	cpuid
	shr	$16, %ebx
	and	$0xff, %ebx
	cmp	$1, %ebx
	jbe	long_mode
	mov	%ebx, %edi
	dec	%edi			/* APs expected */

	/* Copy the AP trampoline to AP_BASE. */
	mov	$ap_tramp, %esi
	mov	$AP_BASE, %edi
	mov	$(ap_tramp_end - ap_tramp), %ecx
	cld
	rep movsb
	mov	%ebx, %edi
	dec	%edi
	movl	$0, AP_COUNT

	/* INIT then SIPI to all excluding self. */
	movl	$0x000c4500, ICR_LO
	mov	$100000, %ecx
1:	loop	1b
	movl	$0x000c4608, ICR_LO
	/* Wait (bounded) for every AP to check in. */
	mov	$20000000, %ecx
2:	cmp	%edi, AP_COUNT
	je	3f
	pause
	loop	2b
	mov	$msg_ap_missing, %esi
	call	puts32
	jmp	long_mode
3:	mov	$msg_ap_ok, %esi
	call	puts32

long_mode:
	/* Identity-map the first 1 GiB with 2 MiB pages. */
	mov	$PD, %edi
	xor	%eax, %eax
	or	$0x83, %eax		/* present, writable, 2 MiB */
	mov	$512, %ecx
4:	mov	%eax, (%edi)
	movl	$0, 4(%edi)
	add	$0x200000, %eax
	add	$8, %edi
	loop	4b
	movl	$(PDPT | 3), PML4
	movl	$0, PML4 + 4
	movl	$(PD | 3), PDPT
	movl	$0, PDPT + 4
	mov	%cr4, %eax
	or	$0x20, %eax		/* PAE */
	mov	%eax, %cr4
	mov	$PML4, %eax
	mov	%eax, %cr3
	mov	$0xc0000080, %ecx	/* EFER */
	rdmsr
	or	$0x100, %eax		/* LME */
	wrmsr
	lgdt	gdt_desc
	mov	%cr0, %eax
	or	$0x80000000, %eax	/* PG */
	mov	%eax, %cr0
	ljmp	$0x08, $start64

bad_info:
	mov	$msg_bad_info, %esi
	call	puts32
	jmp	reset32

puts32:
	mov	$UART, %dx
5:	lodsb
	test	%al, %al
	jz	6f
	outb	%al, %dx
	jmp	5b
6:	ret

reset32:
	mov	$0xfe, %al
	outb	%al, $0x64
7:	hlt
	jmp	7b

	.code64
start64:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %ss
	lea	msg_long(%rip), %rsi
	mov	$UART, %dx
8:	lodsb
	test	%al, %al
	jz	9f
	outb	%al, %dx
	jmp	8b
9:
#ifndef PAYLOAD_IDLE
	mov	$0xfe, %al
	outb	%al, $0x64
#else
	cli				/* idle: halted for good, no exit (tests/bench/overhead.py) */
#endif
10:	hlt
	jmp	10b

/* AP trampoline: copied to AP_BASE, runs in real mode with cs = AP_BASE >> 4. */
	.code16
ap_tramp:
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	mov	$UART, %dx
	/* APs print one at a time: spin on a byte lock at 0x9004. */
11:	mov	$1, %al
	xchg	%al, 0x9004
	test	%al, %al
	jnz	11b
	mov	$(msg_ap - ap_tramp), %si
	/* the message sits in the trampoline copy: address it through cs */
12:	mov	%cs:(%si), %al
	test	%al, %al
	jz	13f
	outb	%al, %dx
	inc	%si
	jmp	12b
13:	movb	$0, 0x9004
	lock incl 0x9000
14:	hlt
	jmp	14b
msg_ap:	.asciz	"uvm-kvm-test: AP up\n"
ap_tramp_end:

	.p2align 3
gdt:	.quad	0
	.quad	0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad	0x00cf92000000ffff	/* 0x10: data */
gdt_desc:
	.word	gdt_desc - gdt - 1
	.long	gdt

msg_entry:	.asciz	"uvm-kvm-test: PVH 32-bit entry, start_info ok\n"
msg_ap_ok:	.asciz	"uvm-kvm-test: all APs up\n"
msg_ap_missing:	.asciz	"uvm-kvm-test: APs missing\n"
msg_bad_info:	.asciz	"uvm-kvm-test: bad start_info\n"
msg_long:	.asciz	"uvm-kvm-test: PVH long mode ok\n"
