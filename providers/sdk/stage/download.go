package stage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/llorch/llorch/providers"
)

const defaultHFEndpoint = "https://huggingface.co"

// hfEndpoint is HF_ENDPOINT or huggingface.co, as huggingface_hub reads it.
func (st *Stager) hfEndpoint() string {
	if e := strings.TrimRight(st.getenv("HF_ENDPOINT"), "/"); e != "" {
		return e
	}
	return defaultHFEndpoint
}

// hfToken is the Hugging Face token, looked up as huggingface_hub does:
// HF_TOKEN, then the file written by `hf auth login` (HF_TOKEN_PATH, or
// token under HF_HOME, by default ~/.cache/huggingface).
func (st *Stager) hfToken() string {
	if t := strings.TrimSpace(st.getenv("HF_TOKEN")); t != "" {
		return t
	}
	path := st.getenv("HF_TOKEN_PATH")
	if path == "" {
		home := st.getenv("HF_HOME")
		if home == "" {
			if x := st.getenv("XDG_CACHE_HOME"); filepath.IsAbs(x) {
				home = filepath.Join(x, "huggingface")
			} else if h := st.getenv("HOME"); h != "" {
				home = filepath.Join(h, ".cache", "huggingface")
			}
		}
		if home == "" {
			return ""
		}
		path = filepath.Join(home, "token")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// source is where a model is downloaded from.
type source struct {
	ref   Ref
	url   string
	token string // sent only to the Hugging Face endpoint
	hf    bool   // the URL is on the Hugging Face endpoint
}

func (st *Stager) downloadSource(ref Ref) source {
	endpoint := st.hfEndpoint()
	s := source{ref: ref}
	switch ref.Kind {
	case HF:
		s.url, s.hf = ref.HFResolveURL(endpoint), true
	case HTTPS:
		s.url = ref.URL.String()
		if e, err := url.Parse(endpoint); err == nil && strings.EqualFold(e.Host, ref.URL.Host) {
			s.hf = true
		}
	}
	if s.hf {
		s.token = st.hfToken()
	}
	return s
}

// shown is the URL as messages show it: no credentials.
func (s source) shown() string {
	if u, err := url.Parse(s.url); err == nil {
		return u.Redacted()
	}
	return s.url
}

var errStalled = errors.New("download stalled")

// fetch downloads s into dest through dest+".partial", resuming a partial
// file left by an interrupted download with a Range request. The sha256 is
// computed while writing; a mismatch with want (when set) or a file that
// fails the Stager's Check removes the partial file. On success the file is
// renamed to dest and its digest returned.
func (st *Stager) fetch(ctx context.Context, s source, dest, want string, progress func(providers.Event)) (string, error) {
	partial := dest + ".partial"
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("creating the model cache directory: %w", err)
	}
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", partial, err)
	}
	defer f.Close()

	h := sha256.New()
	offset, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", partial, err)
	}
	if offset > 0 {
		// Hash what is already there, so that the digest covers the whole file
		// without reading it twice.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", fmt.Errorf("reading %s: %w", partial, err)
		}
		if _, err := copyCtx(ctx, h, f, nil); err != nil {
			return "", fmt.Errorf("hashing the partial download %s: %w", partial, err)
		}
	}

	for attempt := 0; ; attempt++ {
		resp, err := st.get(ctx, s, offset)
		if err != nil {
			return "", err
		}
		// Hugging Face names the commit a revision resolved to; the lock
		// file records it beside the digest.
		if rev := resp.Header.Get("X-Repo-Commit"); rev != "" {
			st.noteRevision(dest, rev)
		}
		total := int64(-1) // unknown
		restart, complete := false, false
		switch resp.StatusCode {
		case http.StatusOK:
			if offset > 0 { // the server ignored Range: start over with this body
				if err := f.Truncate(0); err != nil {
					resp.Body.Close()
					return "", fmt.Errorf("truncating %s: %w", partial, err)
				}
				offset = 0
				h.Reset()
			}
			total = resp.ContentLength
		case http.StatusPartialContent:
			start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
			if !ok || start != offset {
				restart = true
				break
			}
			total = size
			progress(providers.Event{Stage: "download", Current: offset, Total: total,
				Message: fmt.Sprintf("resuming %s at %s", s.ref.Raw, HumanBytes(offset))})
		case http.StatusRequestedRangeNotSatisfiable:
			// The partial file is as long as the remote one (complete, but not
			// yet renamed), or longer (stale): finish or start over.
			_, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
			complete = ok && size == offset
			restart = !complete
		default:
			err := statusError(s, resp, st.hfEndpoint())
			resp.Body.Close()
			return "", err
		}
		if restart {
			resp.Body.Close()
			if attempt > 0 {
				return "", fmt.Errorf("downloading %s: the server answers range requests inconsistently; remove %s and try again", s.shown(), partial)
			}
			if err := f.Truncate(0); err != nil {
				return "", fmt.Errorf("truncating %s: %w", partial, err)
			}
			offset = 0
			h.Reset()
			continue
		}
		if complete {
			resp.Body.Close()
			break
		}
		err = st.receive(ctx, s, resp, f, h, offset, total, progress)
		resp.Body.Close()
		if err != nil {
			return "", err
		}
		break
	}

	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("syncing %s: %w", partial, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("closing %s: %w", partial, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		os.Remove(partial)
		return "", &Error{Summary: "Model Checksum Mismatch", Field: FieldSHA256, Err: fmt.Errorf(
			"sha256 mismatch for %s: expected %s, got %s; the downloaded file was removed. "+
				"Check the sha256 in the pool's model block, or the ref (a moving revision such as main may have changed)",
			s.ref.Raw, want, got)}
	}
	if err := st.check(ctx, partial); err != nil {
		os.Remove(partial)
		return "", &Error{Summary: summary(err, "Model Check Failed"), Field: FieldRef, Err: fmt.Errorf(
			"the file downloaded from %s was removed: %w", s.shown(), err)}
	}
	if err := os.Rename(partial, dest); err != nil {
		return "", fmt.Errorf("moving the finished download into place: %w", err)
	}
	if err := SyncDir(filepath.Dir(dest)); err != nil {
		return "", err
	}
	return got, nil
}

// get sends the download request, with Range from offset when resuming and
// the bearer token for the Hugging Face endpoint (Go's client drops it on a
// redirect to another host, such as Hugging Face's CDN).
func (st *Stager) get(ctx context.Context, s source, offset int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", s.shown(), err)
	}
	if st.UserAgent != "" {
		req.Header.Set("User-Agent", st.UserAgent)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := st.client().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, which is shown once below
		}
		return nil, fmt.Errorf("downloading %s: %w", s.shown(), err)
	}
	return resp, nil
}

// receive copies the response body to f from offset, hashing it, with
// progress events and a stall timer.
func (st *Stager) receive(ctx context.Context, s source, resp *http.Response, f *os.File, h hash.Hash,
	offset, total int64, progress func(providers.Event)) error {
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("seeking in %s: %w", f.Name(), err)
	}
	// The response body is read under the request's context; the stall
	// timer cancels a body read that waits too long for data.
	stallCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(st.stallTimeout(), func() { cancel(errStalled) })
	defer timer.Stop()
	stop := context.AfterFunc(stallCtx, func() { resp.Body.Close() })
	defer stop()

	step := total / 100
	if step < 1<<20 {
		step = 1 << 20
	}
	cur, lastEmit := offset, offset
	emit := func() {
		msg := fmt.Sprintf("downloading %s: %s", s.ref.Raw, HumanBytes(cur))
		if total > 0 {
			msg += " of " + HumanBytes(total)
		}
		progress(providers.Event{Stage: "download", Message: msg, Current: cur, Total: total})
		lastEmit = cur
	}
	emit()
	buf := make([]byte, 256<<10)
	w := io.MultiWriter(f, h)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			timer.Reset(st.stallTimeout())
			if _, err := w.Write(buf[:n]); err != nil {
				return fmt.Errorf("writing %s: %w", f.Name(), err)
			}
			cur += int64(n)
			if cur-lastEmit >= step {
				emit()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			reason := rerr.Error()
			switch {
			case errors.Is(context.Cause(stallCtx), errStalled):
				reason = fmt.Sprintf("no data for %s", st.stallTimeout())
			case ctx.Err() != nil:
				reason = ctx.Err().Error()
			case errors.Is(rerr, io.ErrUnexpectedEOF):
				reason = "the connection closed early"
			}
			of := ""
			if total > 0 {
				of = " of " + HumanBytes(total)
			}
			return fmt.Errorf("downloading %s: stopped after %s%s (%s); the partial file %s is kept and the next apply resumes it",
				s.shown(), HumanBytes(cur), of, reason, f.Name())
		}
	}
	if total > 0 && cur != total {
		return fmt.Errorf("downloading %s: received %s but expected %s; the partial file %s is kept and the next apply resumes it",
			s.shown(), HumanBytes(cur), HumanBytes(total), f.Name())
	}
	if cur != lastEmit {
		emit()
	}
	return nil
}

// parseContentRange reads "bytes START-END/SIZE" or "bytes */SIZE"; start is
// -1 for the latter.
func parseContentRange(v string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	size, err := strconv.ParseInt(sz, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if rng == "*" {
		return -1, size, true
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err = strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return start, size, true
}

// statusError explains an HTTP failure in terms of what to do about it.
func statusError(s source, resp *http.Response, endpoint string) error {
	msg := fmt.Sprintf("downloading %s: HTTP %d %s", s.shown(), resp.StatusCode, http.StatusText(resp.StatusCode))
	var hint string
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		switch {
		case s.hf && s.token != "":
			hint = "the token in HF_TOKEN was not accepted: check that it is valid and not expired. " +
				"(Hugging Face also answers 401 for repositories that do not exist)"
		case s.hf:
			hint = "the repository is private, gated or does not exist: set HF_TOKEN to a Hugging Face access token that can read it"
		default:
			hint = "the server wants credentials, which llorch sends only to Hugging Face (HF_TOKEN); " +
				"use a URL that needs none, or download the file yourself and use a file: ref"
		}
	case http.StatusForbidden:
		if s.hf {
			page := endpoint + "/" + s.ref.Org + "/" + s.ref.Repo
			if s.ref.Kind != HF {
				page = "the model's page on " + endpoint
			}
			hint = "the repository is gated: accept the model's license on " + page +
				" and set HF_TOKEN to a token of the account that accepted it"
		} else {
			hint = "the server refused access to this file"
		}
	case http.StatusNotFound:
		if s.ref.Kind == HF {
			hint = "the file or revision does not exist: check the organisation, repository, file path and revision (@" + s.ref.Revision + ")"
		} else {
			hint = "the file does not exist at this URL"
		}
	}
	if m := resp.Header.Get("X-Error-Message"); m != "" {
		if len(m) > 200 {
			m = m[:200] + "…"
		}
		msg += " (" + m + ")"
	}
	if hint != "" {
		msg += "; " + hint
	}
	return &Error{Summary: "Model Download Failed", Field: FieldRef, Err: errors.New(msg)}
}

// copyCtx copies src to dst, stopping when ctx is cancelled; onBytes (may
// be nil) sees the running total.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader, onBytes func(int64)) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		r, err := src.Read(buf)
		if r > 0 {
			if _, werr := dst.Write(buf[:r]); werr != nil {
				return n, werr
			}
			n += int64(r)
			if onBytes != nil {
				onBytes(n)
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// HumanBytes formats n as "812 B", "3.4 MiB", "4.1 GiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
