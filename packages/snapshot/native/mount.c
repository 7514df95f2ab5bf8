// mount(2) and umount2(2) for Node, as promises. Hand-written because no maintained npm package
// makes overlay mounts (those on npm bind-mount only, or no longer build), and a worker mounts
// and unmounts a snapshot for every step: as mount(8)/umount(8) processes that cost a fork of the
// worker's large Node process plus libmount reading the mount table, several ms each.
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
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

// mount(source, target, fstype, flags, data, cwd): Promise<void>
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  request *r = calloc(1, sizeof(request));
  if (!r) return NULL;
  int ok = argc == 6;
  if (ok) {
    r->source = string_arg(env, argv[0], &ok);
    r->target = string_arg(env, argv[1], &ok);
    r->fstype = string_arg(env, argv[2], &ok);
    double flags = 0;
    if (napi_get_value_double(env, argv[3], &flags) != napi_ok) ok = 0;
    r->flags = (unsigned long)flags;
    r->data = string_arg(env, argv[4], &ok);
    r->cwd = string_arg(env, argv[5], &ok);
  }
  return start(env, r, ok);
}

// umount(target, flags): Promise<void>
static napi_value js_umount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  request *r = calloc(1, sizeof(request));
  if (!r) return NULL;
  r->unmount = 1;
  int ok = argc == 2;
  if (ok) {
    r->target = string_arg(env, argv[0], &ok);
    double flags = 0;
    if (napi_get_value_double(env, argv[1], &flags) != napi_ok) ok = 0;
    r->flags = (unsigned long)flags;
  }
  return start(env, r, ok);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "mount", NAPI_AUTO_LENGTH, js_mount, NULL, &fn);
  napi_set_named_property(env, exports, "mount", fn);
  napi_create_function(env, "umount", NAPI_AUTO_LENGTH, js_umount, NULL, &fn);
  napi_set_named_property(env, exports, "umount", fn);
  return exports;
}
