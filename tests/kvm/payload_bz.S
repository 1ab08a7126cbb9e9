/*
 * A tiny bzImage for tests/kvm. Real-mode setup code (16-bit entry) and a
 * 64-bit kernel (64-bit entry at load address + 0x200): each writes a line
 * to the UART and resets the machine through the i8042. With a '!' on the
 * kernel command line the 64-bit code triple-faults instead.
 */
	.section .text
	.code16
	.globl _start
_start:
	.org 0x1f1
setup_sects:	.byte 1
root_flags:	.word 0
syssize:	.long (kernel_end - kernel_start) / 16
ram_size:	.word 0
vid_mode:	.word 0
root_dev:	.word 0
boot_flag:	.word 0xaa55
	.org 0x200
	jmp	start16
	.ascii	"HdrS"
	.word	0x020f			/* protocol version */
	.long	0			/* realmode_swtch */
	.word	0			/* start_sys_seg */
	.word	0			/* kernel_version */
	.byte	0			/* type_of_loader */
	.byte	1			/* loadflags: LOADED_HIGH */
	.word	0			/* setup_move_size */
	.long	0x100000		/* code32_start */
	.long	0			/* ramdisk_image */
	.long	0			/* ramdisk_size */
	.long	0			/* bootsect_kludge */
	.word	0			/* heap_end_ptr */
	.byte	0			/* ext_loader_ver */
	.byte	0			/* ext_loader_type */
	.long	0			/* cmd_line_ptr */
	.long	0x7fffffff		/* initrd_addr_max */
	.long	0x200000		/* kernel_alignment */
	.byte	0			/* relocatable_kernel */
	.byte	0			/* min_alignment */
	.word	1			/* xloadflags: XLF_KERNEL_64 */
	.long	2047			/* cmdline_size */
	.long	0			/* hardware_subarch */
	.quad	0			/* hardware_subarch_data */
	.long	0			/* payload_offset */
	.long	0			/* payload_length */
	.quad	0			/* setup_data */
	.quad	0x100000		/* pref_address */
	.long	0x10000			/* init_size */
	.long	0			/* handover_offset */
	.long	0			/* kernel_info_offset */

/* Real mode: ds is the setup base segment, so labels are offsets from the file start. */
start16:
	mov	$msg16, %si
	mov	$0x3f8, %dx
1:	lodsb
	test	%al, %al
	jz	2f
	outb	%al, %dx
	jmp	1b
2:	mov	$0xfe, %al
	outb	%al, $0x64
3:	hlt
	jmp	3b
msg16:	.asciz	"uvm-kvm-test: hello from real mode\n"

	.org	0x400
kernel_start:
	.org	0x600
	.code64
start64:
	/* rsi: the zero page; cmd_line_ptr at offset 0x228. */
	mov	0x228(%rsi), %ebx
	test	%ebx, %ebx
	jz	print
scan:	movb	(%rbx), %al
	test	%al, %al
	jz	print
	cmp	$'!', %al
	je	fault
	inc	%rbx
	jmp	scan
print:	lea	msg64(%rip), %rsi
	mov	$0x3f8, %dx
1:	lodsb
	test	%al, %al
	jz	2f
	outb	%al, %dx
	jmp	1b
2:	mov	$0xfe, %al
	outb	%al, $0x64
3:	hlt
	jmp	3b
fault:	lidt	null_idt(%rip)
	int3				/* no IDT: #GP, #DF, then a triple fault */
	jmp	fault
	.p2align 3
null_idt:
	.word	0
	.quad	0
msg64:	.asciz	"uvm-kvm-test: hello from long mode\n"
	.p2align 4
kernel_end:
