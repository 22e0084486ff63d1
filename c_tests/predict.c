/* Exercises c_predict_api.h on a model fixture, the way C callers of MXNet
 * use it, and checks the outputs against MXNet's golden outputs.
 * Usage: predict MODEL_DIR MODEL_NAME */
#include <mxnet/c_api.h>
#include <mxnet/c_predict_api.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, "\n");                                               \
      failures++;                                                          \
    }                                                                      \
  } while (0)

#define OK(call) CHECK((call) == 0, "%s", MXGetLastError())

static char *read_file(const char *path, long *size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  *size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc(*size + 1);
  if (fread(buf, 1, *size, f) != (size_t)*size) exit(2);
  buf[*size] = '\0';
  fclose(f);
  return buf;
}

/* Looks an array up by key in an NDList. */
static const float *list_find(NDListHandle list, mx_uint len, const char *name, mx_uint *elems,
                              mx_uint *shape_out, mx_uint *ndim_out) {
  for (mx_uint i = 0; i < len; i++) {
    const char *key;
    const mx_float *data;
    const mx_uint *shape;
    mx_uint ndim;
    if (MXNDListGet(list, i, &key, &data, &shape, &ndim) != 0) return NULL;
    if (strcmp(key, name) == 0) {
      *elems = 1;
      for (mx_uint d = 0; d < ndim; d++) {
        *elems *= shape[d];
        if (shape_out) shape_out[d] = shape[d];
      }
      if (ndim_out) *ndim_out = ndim;
      return data;
    }
  }
  return NULL;
}

static int close_enough(const float *got, const float *want, mx_uint n) {
  float max_ref = 0;
  for (mx_uint i = 0; i < n; i++) max_ref = fmaxf(max_ref, fabsf(want[i]));
  float tol = 1e-4f + 1e-3f * max_ref;
  for (mx_uint i = 0; i < n; i++)
    if (!(fabsf(got[i] - want[i]) <= tol)) {
      fprintf(stderr, "element %u: %g vs %g\n", i, got[i], want[i]);
      return 0;
    }
  return 1;
}

static int monitor_calls = 0;
static void monitor(const char *name, NDArrayHandle arr, void *user) {
  (void)user;
  mx_uint ndim = 0;
  const mx_uint *dims = NULL;
  if (name[0] != '\0' && MXNDArrayGetShape(arr, &ndim, &dims) == 0 && ndim > 0) monitor_calls++;
  MXNDArrayFree(arr);
}

struct worker {
  PredictorHandle pred;
  const float *input;
  mx_uint input_elems;
  float *out;
  mx_uint out_elems;
  int rc;
};

static void *run_worker(void *arg) {
  struct worker *w = arg;
  w->rc = MXPredSetInput(w->pred, "data", w->input, w->input_elems) || MXPredForward(w->pred) ||
          MXPredGetOutput(w->pred, 0, w->out, w->out_elems);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL_DIR MODEL_NAME\n", argv[0]);
    return 2;
  }
  char path[4096];
  long json_size, params_size, io_size;
  snprintf(path, sizeof path, "%s/%s-symbol.json", argv[1], argv[2]);
  char *json = read_file(path, &json_size);
  snprintf(path, sizeof path, "%s/%s-0000.params", argv[1], argv[2]);
  char *params = read_file(path, &params_size);
  snprintf(path, sizeof path, "%s/%s-io.params", argv[1], argv[2]);
  char *io = read_file(path, &io_size);

  NDListHandle list;
  mx_uint list_len;
  OK(MXNDListCreate(io, (int)io_size, &list, &list_len));
  mx_uint in_elems = 0, ref_elems = 0, in_shape[8], in_ndim = 0;
  const float *input = list_find(list, list_len, "data", &in_elems, in_shape, &in_ndim);
  const float *reference = list_find(list, list_len, "output0", &ref_elems, NULL, NULL);
  CHECK(input && reference, "io file lacks data or output0");
  if (!input || !reference) return 1;

  const char *keys[1] = {"data"};
  mx_uint indptr[2] = {0, in_ndim};
  PredictorHandle pred = NULL;
  OK(MXPredCreate(json, params, (int)params_size, 1, 0, 1, keys, indptr, in_shape, &pred));

  /* Output shape and type. */
  mx_uint *out_shape, out_ndim;
  OK(MXPredGetOutputShape(pred, 0, &out_shape, &out_ndim));
  mx_uint out_elems = 1;
  for (mx_uint i = 0; i < out_ndim; i++) out_elems *= out_shape[i];
  CHECK(out_elems == ref_elems, "output has %u elements, MXNet's %u", out_elems, ref_elems);
  int dtype = -1;
  OK(MXPredGetOutputType(pred, 0, &dtype));
  CHECK(dtype == 0, "output dtype %d", dtype);

  /* Full forward. */
  float *out = calloc(out_elems, sizeof(float));
  OK(MXPredSetInput(pred, "data", input, in_elems));
  OK(MXPredForward(pred));
  OK(MXPredGetOutput(pred, 0, out, out_elems));
  CHECK(close_enough(out, reference, out_elems), "forward output differs from MXNet");

  /* Step by step. */
  memset(out, 0, out_elems * sizeof(float));
  int step = 0, left = 1;
  for (step = 0; left > 0; step++) OK(MXPredPartialForward(pred, step, &left));
  OK(MXPredGetOutput(pred, 0, out, out_elems));
  CHECK(close_enough(out, reference, out_elems), "partial forward output differs");

  /* Monitor callback sees every operator output. */
  OK(MXPredSetMonitorCallback(pred, monitor, NULL, false));
  OK(MXPredForward(pred));
  int output_calls = monitor_calls;
  CHECK(output_calls >= step, "monitor called %d times for %d steps", output_calls, step);
  monitor_calls = 0;
  OK(MXPredSetMonitorCallback(pred, monitor, NULL, true));
  OK(MXPredForward(pred));
  CHECK(monitor_calls > output_calls, "monitor_all reported %d arrays, outputs alone %d", monitor_calls,
        output_calls);
  OK(MXPredSetMonitorCallback(pred, NULL, NULL, false));
  /* A step whose inputs were released is an error, not a crash. */
  CHECK(MXPredPartialForward(pred, step - 1, &left) == -1, "last step ran without its inputs");
  CHECK(strstr(MXGetLastError(), "in order") != NULL, "message: %s", MXGetLastError());
  CHECK(MXPredPartialForward(pred, step + 5, &left) == -1, "step out of range accepted");
  CHECK(MXPredPartialForward(pred, -1, &left) == -1, "negative step accepted");

  /* Errors instead of crashes. */
  CHECK(MXPredSetInput(pred, "nosuch", input, in_elems) == -1, "unknown input accepted");
  CHECK(strstr(MXGetLastError(), "nosuch") != NULL, "message: %s", MXGetLastError());
  CHECK(MXPredSetInput(pred, "data", input, in_elems - 1) == -1, "wrong size accepted");
  CHECK(MXPredGetOutput(pred, 7, out, out_elems) == -1, "bad output index accepted");
  CHECK(MXPredGetOutputShape(pred, 7, &out_shape, &out_ndim) == -1, "bad output index accepted");
  CHECK(MXPredForward(NULL) == -1, "null handle accepted");
  PredictorHandle bad = NULL;
  CHECK(MXPredCreate("{not json", params, (int)params_size, 1, 0, 1, keys, indptr, in_shape, &bad) == -1,
        "invalid JSON accepted");
  CHECK(MXPredCreate(json, params, 0, 1, 0, 1, keys, indptr, in_shape, &bad) == -1, "empty params accepted");
  CHECK(MXPredCreate(json, params, (int)params_size / 2, 1, 0, 1, keys, indptr, in_shape, &bad) == -1,
        "truncated params accepted");
  CHECK(MXPredCreate(json, params, (int)params_size, 2, 0, 1, keys, indptr, in_shape, &bad) == -1,
        "GPU accepted");
  CHECK(MXPredCreate(NULL, params, (int)params_size, 1, 0, 1, keys, indptr, in_shape, &bad) == -1,
        "null JSON accepted");

  /* Reshape to batch 2: both images give the batch-1 answer. */
  mx_uint shape2[8];
  memcpy(shape2, in_shape, sizeof shape2);
  shape2[0] = 2;
  PredictorHandle pred2 = NULL;
  OK(MXPredReshape(1, keys, indptr, shape2, pred, &pred2));
  if (pred2) {
    float *input2 = malloc(2 * in_elems * sizeof(float));
    memcpy(input2, input, in_elems * sizeof(float));
    memcpy(input2 + in_elems, input, in_elems * sizeof(float));
    float *out2 = calloc(2 * out_elems, sizeof(float));
    OK(MXPredSetInput(pred2, "data", input2, 2 * in_elems));
    OK(MXPredForward(pred2));
    OK(MXPredGetOutput(pred2, 0, out2, 2 * out_elems));
    CHECK(close_enough(out2, reference, out_elems) && close_enough(out2 + out_elems, reference, out_elems),
          "reshaped outputs differ");
    OK(MXPredFree(pred2));
    free(input2);
    free(out2);
  }

  /* Several predictors on several threads. */
  enum { THREADS = 3 };
  PredictorHandle preds[THREADS];
  OK(MXPredCreateMultiThread(json, params, (int)params_size, 1, 0, 1, keys, indptr, in_shape, THREADS, preds));
  struct worker workers[THREADS];
  pthread_t threads[THREADS];
  for (int t = 0; t < THREADS; t++) {
    workers[t] = (struct worker){preds[t], input, in_elems, calloc(out_elems, sizeof(float)), out_elems, -1};
    pthread_create(&threads[t], NULL, run_worker, &workers[t]);
  }
  for (int t = 0; t < THREADS; t++) {
    pthread_join(threads[t], NULL);
    CHECK(workers[t].rc == 0, "thread %d failed: %s", t, MXGetLastError());
    CHECK(close_enough(workers[t].out, reference, out_elems), "thread %d output differs", t);
    free(workers[t].out);
    OK(MXPredFree(preds[t]));
  }

  OK(MXPredFree(pred));
  OK(MXPredFree(NULL));
  OK(MXNDListFree(list));
  free(out);
  free(json);
  free(params);
  free(io);
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("predict: all checks passed\n");
  return 0;
}
