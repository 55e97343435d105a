"""The subcommands of ``vidrcnn``, one module each with ``main(argv, prog)``; ``tools/<name>.py`` run the same mains."""
