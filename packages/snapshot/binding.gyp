{
  "targets": [
    {
      "target_name": "buildyard_mount",
      "sources": ["native/mount.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror"]
    }
  ]
}
