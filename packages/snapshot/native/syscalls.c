// The system calls a worker makes for every step that Node has no API for: mount(2) and
// umount2(2) as promises, and a file's extended attributes (llistxattr, lgetxattr, lsetxattr:
// never following a symlink, whose target may name a host file). Hand-written because no
// maintained npm package does these (those on npm bind-mount only, or follow symlinks, or no
// longer build), and as processes (mount(8), umount(8), getfattr, setfattr) each cost a fork of
// the worker's large Node process plus the tool's own start, several ms a step.
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/xattr.h>
#include <unistd.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int unmount;
  char *source, *target, *fstype, *data, *cwd;
  unsigned long flags;
  int err;
} request;

// Runs on a thread of its own when the mount has a cwd: unshare(CLONE_FS) gives that thread a
// private working directory, so relative overlay lowerdirs (which keep long chains within the
// kernel's one page of options) resolve against it without moving the process's or a libuv
// pool thread's.
static void *run(void *arg) {
  request *r = arg;
  if (r->cwd && (unshare(CLONE_FS) != 0 || chdir(r->cwd) != 0)) {
    r->err = errno;
    return NULL;
  }
  int rc = r->unmount ? umount2(r->target, (int)r->flags) : mount(r->source, r->target, r->fstype, r->flags, r->data);
  r->err = rc == 0 ? 0 : errno;
  return NULL;
}

static void execute(napi_env env, void *data) {
  (void)env;
  request *r = data;
  if (!r->cwd) {
    run(r);
    return;
  }
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, run, r);
  if (rc != 0) r->err = rc;
  else pthread_join(thread, NULL);
}

static void release(request *r) {
  free(r->source);
  free(r->target);
  free(r->fstype);
  free(r->data);
  free(r->cwd);
  free(r);
}

// Rejects with an Error whose code is the errno's name (EBUSY, EPERM, ...) and message its text.
static void complete(napi_env env, napi_status status, void *data) {
  request *r = data;
  if (status == napi_ok && r->err == 0) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, r->deferred, undefined);
  } else {
    int err = status == napi_ok ? r->err : ECANCELED;
    const char *name = strerrorname_np(err);
    napi_value code, message, error;
    napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &error);
    napi_reject_deferred(env, r->deferred, error);
  }
  napi_delete_async_work(env, r->work);
  release(r);
}

// A string argument, or NULL for null/undefined; sets *ok to 0 on anything else.
static char *string_arg(napi_env env, napi_value value, int *ok) {
  napi_valuetype type;
  napi_typeof(env, value, &type);
  if (type == napi_null || type == napi_undefined) return NULL;
  size_t length;
  if (type != napi_string || napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) {
    *ok = 0;
    return NULL;
  }
  char *s = malloc(length + 1);
  if (!s) {
    *ok = 0;
    return NULL;
  }
  napi_get_value_string_utf8(env, value, s, length + 1, &length);
  return s;
}

static napi_value start(napi_env env, request *r, int ok) {
  napi_value promise = NULL, name;
  if (!ok || !r->target) {
    release(r);
    napi_throw_type_error(env, NULL, "mount: expected (source, target, fstype, flags, data, cwd) or (target, flags) with string paths");
    return NULL;
  }
  napi_create_promise(env, &r->deferred, &promise);
  napi_create_string_utf8(env, r->unmount ? "umount2" : "mount", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, r, &r->work);
  napi_queue_async_work(env, r->work);
  return promise;
}

// A fresh request and the call's arguments; *ok is 0 unless exactly `count` were given.
static request *new_request(napi_env env, napi_callback_info info, napi_value *argv, size_t count, int *ok) {
  size_t argc = count;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  *ok = argc == count;
  return calloc(1, sizeof(request));
}

static unsigned long flags_arg(napi_env env, napi_value value, int *ok) {
  double flags = 0;
  if (napi_get_value_double(env, value, &flags) != napi_ok) *ok = 0;
  return (unsigned long)flags;
}

// mount(source, target, fstype, flags, data, cwd): Promise<void>
static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int ok;
  request *r = new_request(env, info, argv, 6, &ok);
  if (!r) return NULL;
  if (ok) {
    r->source = string_arg(env, argv[0], &ok);
    r->target = string_arg(env, argv[1], &ok);
    r->fstype = string_arg(env, argv[2], &ok);
    r->flags = flags_arg(env, argv[3], &ok);
    r->data = string_arg(env, argv[4], &ok);
    r->cwd = string_arg(env, argv[5], &ok);
  }
  return start(env, r, ok);
}

// umount(target, flags): Promise<void>
static napi_value js_umount(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int ok;
  request *r = new_request(env, info, argv, 2, &ok);
  if (!r) return NULL;
  r->unmount = 1;
  if (ok) {
    r->target = string_arg(env, argv[0], &ok);
    r->flags = flags_arg(env, argv[1], &ok);
  }
  return start(env, r, ok);
}

// Throws an Error whose code is the errno's name and message names the call and the path.
static napi_value throw_errno(napi_env env, int err, const char *call, const char *path) {
  const char *name = strerrorname_np(err);
  size_t length = strlen(call) + strlen(path) + strlen(strerror(err)) + 8;
  char *message = malloc(length);
  if (message) snprintf(message, length, "%s %s: %s", call, path, strerror(err));
  napi_throw_error(env, name ? name : "EUNKNOWN", message ? message : strerror(err));
  free(message);
  return NULL;
}

// Reads a string argument into a fresh buffer (NULL and a TypeError when it is none).
static char *required_string(napi_env env, napi_value value, const char *what) {
  int ok = 1;
  char *s = string_arg(env, value, &ok);
  if (!s) napi_throw_type_error(env, NULL, what);
  return s;
}

// listXattrs(path): [name, value][] of the file itself (a symlink's own, not its target's).
// A filesystem without extended attributes gives none.
static napi_value js_list_xattrs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *path = argc == 1 ? required_string(env, argv[0], "listXattrs: expected a path") : NULL;
  if (!path) return NULL;
  char *names = NULL, *value = NULL;
  ssize_t size;
  // The list may grow between the two calls (ERANGE): ask again.
  for (;;) {
    size = llistxattr(path, NULL, 0);
    if (size <= 0) break;
    free(names);
    names = malloc(size);
    if (!names) { size = -1; errno = ENOMEM; break; }
    size = llistxattr(path, names, size);
    if (size >= 0 || errno != ERANGE) break;
  }
  if (size < 0 && errno != ENOTSUP) {
    throw_errno(env, errno, "llistxattr", path);
    goto done;
  }
  napi_create_array(env, &result);
  uint32_t count = 0;
  for (ssize_t at = 0; size > 0 && at < size; at += strlen(names + at) + 1) {
    const char *name = names + at;
    ssize_t length;
    for (;;) {
      length = lgetxattr(path, name, NULL, 0);
      if (length < 0) break;
      free(value);
      value = malloc(length > 0 ? length : 1);
      if (!value) { length = -1; errno = ENOMEM; break; }
      length = lgetxattr(path, name, value, length);
      if (length >= 0 || errno != ERANGE) break;
    }
    if (length < 0 && errno == ENODATA) continue; // removed since it was listed
    if (length < 0) {
      result = throw_errno(env, errno, "lgetxattr", path);
      goto done;
    }
    napi_value pair, js_name, js_value;
    napi_create_array_with_length(env, 2, &pair);
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &js_name);
    napi_create_buffer_copy(env, length, value, NULL, &js_value);
    napi_set_element(env, pair, 0, js_name);
    napi_set_element(env, pair, 1, js_value);
    napi_set_element(env, result, count++, pair);
  }
done:
  free(names);
  free(value);
  free(path);
  return result;
}

// setXattr(path, name, value: Buffer): sets one attribute of the file itself (never a symlink's target).
static napi_value js_set_xattr(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 3) {
    napi_throw_type_error(env, NULL, "setXattr: expected (path, name, value)");
    return NULL;
  }
  void *data;
  size_t length;
  bool is_buffer = false;
  napi_is_buffer(env, argv[2], &is_buffer);
  if (!is_buffer || napi_get_buffer_info(env, argv[2], &data, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "setXattr: the value must be a Buffer");
    return NULL;
  }
  char *path = required_string(env, argv[0], "setXattr: expected a path");
  char *name = path ? required_string(env, argv[1], "setXattr: expected an attribute name") : NULL;
  if (name && lsetxattr(path, name, data, length, 0) != 0) throw_errno(env, errno, "lsetxattr", path);
  free(path);
  free(name);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "mount", NAPI_AUTO_LENGTH, js_mount, NULL, &fn);
  napi_set_named_property(env, exports, "mount", fn);
  napi_create_function(env, "umount", NAPI_AUTO_LENGTH, js_umount, NULL, &fn);
  napi_set_named_property(env, exports, "umount", fn);
  napi_create_function(env, "listXattrs", NAPI_AUTO_LENGTH, js_list_xattrs, NULL, &fn);
  napi_set_named_property(env, exports, "listXattrs", fn);
  napi_create_function(env, "setXattr", NAPI_AUTO_LENGTH, js_set_xattr, NULL, &fn);
  napi_set_named_property(env, exports, "setXattr", fn);
  return exports;
}
