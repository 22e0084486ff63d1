/* Loads, inspects and saves NDArray list files through the C API, the way
 * a C program written against MXNet's c_api.h does.
 * Usage: ndarray FIXTURE_DIR TMP_DIR */
#include <mxnet/c_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                     \
  do {                                                       \
    if (!(cond)) {                                           \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, \
              __LINE__, #cond);                              \
      fprintf(stderr, __VA_ARGS__);                          \
      fprintf(stderr, "\n");                                 \
      failures++;                                            \
    }                                                        \
  } while (0)

#define OK(call) CHECK((call) == 0, "%s", MXGetLastError())

static unsigned char *read_file(const char *path, long *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc(*size);
  if (fread(buf, 1, *size, f) != (size_t)*size) *size = -1;
  fclose(f);
  return buf;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s FIXTURE_DIR TMP_DIR\n", argv[0]);
    return 2;
  }
  char path[4096], out_path[4096];
  snprintf(path, sizeof path, "%s/params/three.params", argv[1]);
  snprintf(out_path, sizeof out_path, "%s/three_saved.params", argv[2]);

  int version = 0;
  OK(MXGetVersion(&version));
  CHECK(version == 10901, "version %d", version);
  CHECK(strcmp(MXGetLastError(), "") == 0, "error text before any failure: %s", MXGetLastError());

  mx_uint n = 0, n_names = 0;
  NDArrayHandle *arrays = NULL;
  const char **names = NULL;
  OK(MXNDArrayLoad(path, &n, &arrays, &n_names, &names));
  CHECK(n == 3 && n_names == 3, "n=%u names=%u", n, n_names);
  CHECK(n_names == 3 && strcmp(names[0], "arg:a") == 0 && strcmp(names[2], "aux:c") == 0, "names");

  /* Shapes and dtypes. */
  mx_uint ndim = 0;
  const mx_uint *dims = NULL;
  OK(MXNDArrayGetShape(arrays[0], &ndim, &dims));
  CHECK(ndim == 2 && dims[0] == 2 && dims[1] == 3, "shape of arg:a");
  int dtype = -1;
  OK(MXNDArrayGetDType(arrays[1], &dtype));
  CHECK(dtype == 5, "dtype of arg:b is %d, expected 5 (int8)", dtype);
  int dev_type = 0, dev_id = -1;
  OK(MXNDArrayGetContext(arrays[2], &dev_type, &dev_id));
  CHECK(dev_type == 1 && dev_id == 0, "context %d %d", dev_type, dev_id);

  /* Values as raw bytes of each dtype. */
  float a[6];
  OK(MXNDArraySyncCopyToCPU(arrays[0], a, 6));
  for (int i = 0; i < 6; i++) CHECK(a[i] == (float)i, "a[%d] = %f", i, a[i]);
  signed char b[4];
  OK(MXNDArraySyncCopyToCPU(arrays[1], b, 4));
  CHECK(b[0] == -1 && b[1] == 2 && b[2] == -128 && b[3] == 127, "int8 values");
  CHECK(MXNDArraySyncCopyToCPU(arrays[1], b, 3) == -1, "size mismatch accepted");
  CHECK(strstr(MXGetLastError(), "size") != NULL, "message: %s", MXGetLastError());

  /* Save and compare bytes with MXNet's file. */
  OK(MXNDArraySave(out_path, n, arrays, names));
  long size_in = 0, size_out = 0;
  unsigned char *in = read_file(path, &size_in);
  unsigned char *out = read_file(out_path, &size_out);
  CHECK(in && out && size_in == size_out && memcmp(in, out, size_in) == 0, "saved file differs");
  free(in);
  free(out);

  /* Handles outlive the load buffers: reload, then read the first handles again. */
  NDArrayHandle first = arrays[0];
  for (mx_uint i = 1; i < n; i++) OK(MXNDArrayFree(arrays[i]));
  mx_uint n2 = 0, n2_names = 0;
  NDArrayHandle *arrays2 = NULL;
  const char **names2 = NULL;
  OK(MXNDArrayLoad(path, &n2, &arrays2, &n2_names, &names2));
  OK(MXNDArraySyncCopyToCPU(first, a, 6));
  CHECK(a[5] == 5.0f, "first handle changed after a second load");
  OK(MXNDArrayFree(first));
  for (mx_uint i = 0; i < n2; i++) OK(MXNDArrayFree(arrays2[i]));

  /* Created arrays. */
  mx_uint shape[3] = {2, 1, 4};
  NDArrayHandle created = NULL;
  OK(MXNDArrayCreateEx(shape, 3, 1, 0, 0, 3, &created));
  unsigned char u8[8] = {0, 1, 2, 3, 250, 251, 254, 255};
  OK(MXNDArraySyncCopyFromCPU(created, u8, 8));
  unsigned char back[8];
  OK(MXNDArraySyncCopyToCPU(created, back, 8));
  CHECK(memcmp(u8, back, 8) == 0, "uint8 round trip");
  OK(MXNDArrayFree(created));

  /* Errors instead of crashes. */
  CHECK(MXNDArrayLoad("/nonexistent/file.params", &n, &arrays, &n_names, &names) == -1, "missing file loaded");
  CHECK(strstr(MXGetLastError(), "nonexistent") != NULL, "message does not name the file: %s", MXGetLastError());
  CHECK(MXNDArrayLoad(path, NULL, &arrays, &n_names, &names) == -1, "null out_size accepted");
  CHECK(MXNDArrayGetShape(NULL, &ndim, &dims) == -1, "null handle accepted");
  CHECK(MXNDArrayLoadFromBuffer(NULL, 10, &n, &arrays, &n_names, &names) == -1, "null buffer accepted");
  unsigned char garbage[40] = {0x12, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  CHECK(MXNDArrayLoadFromBuffer(garbage, sizeof garbage, &n, &arrays, &n_names, &names) == -1, "absurd count accepted");
  OK(MXNDArrayFree(NULL));

  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("ndarray: all checks passed\n");
  return 0;
}
