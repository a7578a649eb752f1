/*
 * ctx_x86_64.S: context switch for x86-64 (System V ABI). See ctx.h.
 * Callee-saved: rbx, rbp, r12-r15, MXCSR and the x87 control word.
 */
#if defined(__x86_64__)
        .text
        .globl  otpc__ctx_switch
        .hidden otpc__ctx_switch
        .type   otpc__ctx_switch, @function
        .p2align 4
/* void otpc__ctx_switch(otpc__ctx_t *from (rdi), otpc__ctx_t to (rsi)) */
otpc__ctx_switch:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   otpc__ctx_switch, .-otpc__ctx_switch

/* First code run on a fresh context: entry in r12, arg in r13. The stack
 * pointer is 16-byte aligned here, as a call requires. */
        .globl  otpc__ctx_trampoline
        .hidden otpc__ctx_trampoline
        .type   otpc__ctx_trampoline, @function
        .p2align 4
otpc__ctx_trampoline:
        .cfi_startproc
        .cfi_undefined rip
        xorl    %ebp, %ebp
        movq    %r13, %rdi
        callq   *%r12
        ud2                     /* entry must not return */
        .cfi_endproc
        .size   otpc__ctx_trampoline, .-otpc__ctx_trampoline
#endif
        .section .note.GNU-stack,"",@progbits
