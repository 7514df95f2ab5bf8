{
  "targets": [
    {
      "target_name": "buildyard_syscalls",
      "sources": ["native/syscalls.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror"]
    }
  ]
}
