/*
 * A stand-in for libc's open/ioctl/close as the NSM driver answers them, so the real koffi
 * marshalling in enclave/nsm/device-nsm.ts runs in tests without /dev/nsm. It records the last
 * request and answers with a response the test sets.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

struct fake_iovec { void *base; size_t len; };
struct fake_nsm_message { struct fake_iovec request; struct fake_iovec response; };

static unsigned char last_request[8192];
static size_t last_request_length;
static unsigned long last_code;
static int last_fd = -1;
static unsigned char canned[16384];
static size_t canned_length;
static int failure_errno;

int open(const char *path, int flags) { (void)path; (void)flags; return 42; }
int close(int fd) { (void)fd; return 0; }

int ioctl(int fd, unsigned long request, struct fake_nsm_message *message) {
  last_fd = fd;
  last_code = request;
  last_request_length = message->request.len < sizeof last_request ? message->request.len : sizeof last_request;
  memcpy(last_request, message->request.base, last_request_length);
  if (failure_errno != 0) { errno = failure_errno; return -1; }
  if (canned_length > message->response.len) { errno = EMSGSIZE; return -1; }
  memcpy(message->response.base, canned, canned_length);
  message->response.len = canned_length;
  return 0;
}

void fake_set_response(const unsigned char *bytes, size_t length) {
  canned_length = length < sizeof canned ? length : sizeof canned;
  memcpy(canned, bytes, canned_length);
}
void fake_set_errno(int value) { failure_errno = value; }
size_t fake_last_request(unsigned char *out) { memcpy(out, last_request, last_request_length); return last_request_length; }
unsigned long fake_last_code(void) { return last_code; }
int fake_last_fd(void) { return last_fd; }
