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

/* void otpc__ctx_call(void *arg (rdi), void (*fn)(void *) (rsi),
 *                     void *top (rdx), otpc__ctx_t *from (rcx))
 * Calls fn(arg) with the stack pointer at top. The caller's context is
 * saved in *from as otpc__ctx_switch saves one, so that a switch to it
 * from fn's frames returns from here too; fn's own return comes back the
 * ordinary way (a predicted return, no floating-point state loaded). */
        .globl  otpc__ctx_call
        .hidden otpc__ctx_call
        .type   otpc__ctx_call, @function
        .p2align 4
otpc__ctx_call:
        .cfi_startproc
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbp, 0
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbx, 0
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r12, 0
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r13, 0
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r14, 0
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r15, 0
        subq    $8, %rsp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rcx)
        movq    %rsp, %rbx      /* kept by fn, as the ABI has it */
        .cfi_def_cfa_register rbx
        movq    %rdx, %rsp
        callq   *%rsi
        movq    %rbx, %rsp
        .cfi_def_cfa_register rsp
        addq    $8, %rsp
        .cfi_adjust_cfa_offset -8
        popq    %r15
        .cfi_adjust_cfa_offset -8
        .cfi_restore r15
        popq    %r14
        .cfi_adjust_cfa_offset -8
        .cfi_restore r14
        popq    %r13
        .cfi_adjust_cfa_offset -8
        .cfi_restore r13
        popq    %r12
        .cfi_adjust_cfa_offset -8
        .cfi_restore r12
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        .cfi_restore rbx
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        .cfi_restore rbp
        ret
        .cfi_endproc
        .size   otpc__ctx_call, .-otpc__ctx_call

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
