;;;; cl-beanstalk (the Common Lisp client, unmodified, from ../shared or
;;;; $CL_BEANSTALK_DIR) against a running sprout: every function that
;;;; package.lisp exports, and the conditions it signals that a server can
;;;; cause. argv: HOST PORT MAX_JOB_SIZE. Prints "ok - NAME" or
;;;; "not ok - NAME: why", like the other client scripts.
;;;;
;;;; Run as: sbcl --script lisp_cl_beanstalk.lisp HOST PORT MAX
;;;;
;;;; What cannot be reached from a healthy sprout, and so is not checked:
;;;; BURIED for a put or release (beanstalkd answers it when it cannot grow
;;;; a heap; sprout never does), OUT_OF_MEMORY and INTERNAL_ERROR (a full
;;;; binlog disk), and EXPECTED_CRLF, UNKNOWN_COMMAND and a YAML line the
;;;; client cannot parse (its own functions never send or cause them).

(require :asdf)
(require :sb-posix)

(defpackage :cl-beanstalk-check
  (:use :cl))
(in-package :cl-beanstalk-check)

(defvar *failed* 0)

(defun say (fmt &rest args)
  (apply #'format t fmt args)
  (terpri)
  (finish-output))

(defun load-client ()
  "Loads cl-beanstalk with ASDF from $CL_BEANSTALK_DIR, quietly."
  (let ((dir (sb-ext:posix-getenv "CL_BEANSTALK_DIR")))
    (unless (and dir (probe-file dir))
      (say "cl-beanstalk source not found (set CL_BEANSTALK_DIR)")
      (sb-ext:exit :code 2))
    (push (uiop:ensure-directory-pathname dir) asdf:*central-registry*)
    (let ((*standard-output* (make-broadcast-stream))
          (*error-output* (make-broadcast-stream)))
      (handler-bind ((warning #'muffle-warning))
        (asdf:load-system :cl-beanstalk)))
    dir))

(defun client-version (dir)
  "The commit SOURCE.md names (the library has no version of its own)."
  (let ((source (merge-pathnames "SOURCE.md" (uiop:ensure-directory-pathname dir))))
    (or (and (probe-file source)
             (let* ((text (uiop:read-file-string source))
                    (at (search "at commit" text))
                    (hex (and at (position-if (lambda (ch) (digit-char-p ch 16)) text
                                              :start (+ at 9)))))
               (and hex (subseq text hex (+ hex 7)))))
        "unknown")))

;; The library must be loaded before the reader meets its package below.
(defvar *client-dir* (load-client))

(defmacro check (name &body body)
  `(handler-case (progn ,@body (say "ok - ~A" ,name))
     ;; cl-beanstalk's own conditions are not errors: each kind is named.
     ((or error beanstalk:beanstalk-error) (e)
       (incf *failed*)
       (say "not ok - ~A: ~A: ~A" ,name (type-of e)
            (let ((why (substitute #\Space #\Newline (princ-to-string e))))
              (subseq why 0 (min 200 (length why))))))
     (beanstalk:bad-reply (e)
       (incf *failed*)
       (say "not ok - ~A: unexpected reply ~S" ,name (beanstalk-internal::reply e)))))

(define-condition check-failed (error)
  ((what :initarg :what :reader what))
  (:report (lambda (c s) (format s "~A" (what c)))))

(defun same-p (want got)
  "EQUAL, but octet vectors compare element by element."
  (cond ((and (typep want '(vector (unsigned-byte 8))) (typep got '(vector (unsigned-byte 8))))
         (equalp want got))
        ((and (consp want) (consp got))
         (and (same-p (car want) (car got)) (same-p (cdr want) (cdr got))))
        (t (equal want got))))

(defun shown (value)
  (let ((text (let ((*print-length* 12)) (prin1-to-string value))))
    (subseq text 0 (min 80 (length text)))))

(defun same (want got)
  (unless (same-p want got)
    (error 'check-failed :what (format nil "expected ~A, got ~A" (shown want) (shown got)))))

(defun expect (ok what)
  (unless ok
    (error 'check-failed :what what)))

(defmacro signals (type &body body)
  "BODY signals a condition of TYPE (caught); returns it."
  `(handler-case (progn ,@body
                        (error 'check-failed :what (format nil "expected ~A" ',type)))
     (,type (c) c)))

(defun eventually (fn &optional (within 3))
  (let ((deadline (+ (get-internal-real-time) (* within internal-time-units-per-second))))
    (loop
      (when (funcall fn) (return t))
      (when (> (get-internal-real-time) deadline)
        (error 'check-failed :what "condition did not hold in time"))
      (sleep 0.05))))

(defun octets (contents)
  (make-array (length contents) :element-type '(unsigned-byte 8) :initial-contents contents))

(defun tube-names ()
  "(name . quoted) for each line of tube_names.txt next to this script."
  (let ((file (merge-pathnames "tube_names.txt" *load-truename*)))
    (with-open-file (in file)
      (loop for line = (read-line in nil)
            while line
            unless (or (zerop (length line)) (char= (char line 0) #\#))
              collect (let ((space (position #\Space line)))
                        (cons (subseq line 0 space)
                              (string= (subseq line (1+ space)) "quoted")))))))

(defun main ()
  (destructuring-bind (host port-text max-text) (rest sb-ext:*posix-argv*)
    (let* ((dir *client-dir*)
           (port (parse-integer port-text))
           (max (parse-integer max-text))
           (c (beanstalk:connect host port))
           (other (beanstalk:connect host port)))
      (say "client cl-beanstalk ~A" (client-version dir))

      (check "use, watch, ignore and the list commands"
        (same "cl-a" (beanstalk:use c "cl-a"))
        (same "cl-a" (beanstalk:list-tube-used c))
        (same 2 (beanstalk:watch c "cl-a"))
        (same 3 (beanstalk:watch c "cl-b"))
        (same 2 (beanstalk:ignore c "default"))
        (same 1 (beanstalk:ignore c "cl-b"))
        (same '("cl-a") (beanstalk:list-tubes-watched c))
        (same nil (beanstalk:ignore c "cl-a")) ; NOT_IGNORED: the last one
        (let ((tubes (beanstalk:list-tubes c)))
          (expect (and (member "default" tubes :test #'string=)
                       (member "cl-a" tubes :test #'string=))
                  (format nil "list-tubes: ~S" tubes))))

      (check "put with priority, delay and TTR, read back by stats-job"
        (multiple-value-bind (id status) (beanstalk:put c 42 30 77 "delayed")
          (same :inserted status)
          (let ((st (beanstalk:stats-job c id)))
            (same (list id "cl-a" "delayed" 42 30 77)
                  (mapcar (lambda (k) (getf st k)) '(:id :tube :state :pri :delay :ttr)))
            (expect (<= 28 (getf st :time-left) 30) (format nil "time-left ~S" st)))
          (multiple-value-bind (body peeked found) (beanstalk:peek-delayed c)
            (same (list "delayed" id :found) (list body peeked found)))
          (same t (beanstalk:delete c id))
          (same '(nil nil :not-found) (multiple-value-list (beanstalk:peek c id)))))

      (check "reserve, reserve with timeout, delete"
        (same '(nil nil :timed-out) (multiple-value-list (beanstalk:reserve c :timeout 0)))
        (let ((a (beanstalk:put c 2 0 60 "first"))
              (b (beanstalk:put c 1 0 60 "second")))
          (same (list "second" b :reserved) (multiple-value-list (beanstalk:reserve c :timeout 1)))
          ;; Without a timeout; a job is ready, so it does not block.
          (same (list "first" a :reserved) (multiple-value-list (beanstalk:reserve c)))
          (same t (beanstalk:delete c b))
          (same t (beanstalk:delete c a))
          (same nil (beanstalk:delete c a))))

      (check "release with priority and delay; touch"
        (let ((id (beanstalk:put c 0 0 20 "again")))
          (same id (nth-value 1 (beanstalk:reserve c :timeout 1)))
          (sleep 1.1)
          (same t (beanstalk:touch c id))
          (expect (>= (getf (beanstalk:stats-job c id) :time-left) 19) "touch did not reset the TTR")
          (same t (beanstalk:release c id 7 1))
          (let ((st (beanstalk:stats-job c id)))
            (same '("delayed" 7 1) (list (getf st :state) (getf st :pri) (getf st :releases))))
          (eventually (lambda () (equal "ready" (getf (beanstalk:stats-job c id) :state))))
          (same id (nth-value 1 (beanstalk:peek-ready c)))
          (same t (beanstalk:delete c id))))

      (check "bury, peek-buried, kick"
        (let ((ids (loop for i below 3 collect (beanstalk:put c 0 0 60 (format nil "b~D" i)))))
          (dolist (id ids)
            (same id (nth-value 1 (beanstalk:reserve c :timeout 1)))
            (same '(t :buried) (multiple-value-list (beanstalk:bury c id 9))))
          (same (first ids) (nth-value 1 (beanstalk:peek-buried c)))
          (let ((st (beanstalk:stats-job c (first ids))))
            (same '("buried" 9 1) (list (getf st :state) (getf st :pri) (getf st :buries))))
          (same 2 (beanstalk:kick c 2))
          (same (third ids) (nth-value 1 (beanstalk:peek-buried c)))
          (same 1 (beanstalk:kick c 10))
          (same :not-found (nth-value 2 (beanstalk:peek-buried c)))
          (same 1 (getf (beanstalk:stats-job c (third ids)) :kicks))
          (dolist (id ids) (same t (beanstalk:delete c id)))))

      (check "stats and stats-tube parsed by cl-beanstalk"
        (let ((st (beanstalk:stats c)))
          (expect (and (integerp (getf st :pid)) (plusp (getf st :pid))) (format nil "pid ~S" st))
          (expect (>= (getf st :current-connections) 2) "current-connections")
          (expect (integerp (getf st :uptime)) "uptime")
          (expect (stringp (getf st :version)) "version"))
        (let ((tube (beanstalk:stats-tube c "cl-a")))
          (same "cl-a" (getf tube :name))
          (same 0 (getf tube :current-jobs-ready))))

      (check "tube names read back by stats-job and stats-tube"
        ;; cl-beanstalk keeps each value's raw text: a name sprout writes
        ;; bare comes back as it is, a quoted one with its quotes.
        (unwind-protect
             (loop for (name . quoted) in (tube-names)
                   for shown = (if quoted (format nil "\"~A\"" name) name)
                   do (beanstalk:use c name)
                      (let ((id (beanstalk:put c 0 0 60 "x")))
                        (unwind-protect
                             (same (list name shown shown)
                                   (list name
                                         (getf (beanstalk:stats-job c id) :tube)
                                         (getf (beanstalk:stats-tube c name) :name)))
                          (beanstalk:delete c id))))
          (beanstalk:use c "cl-a")))

      (check "binary body with every byte value"
        (let* ((body (octets (append (loop repeat 4 append (loop for b below 256 collect b))
                                     '(13 10 13 10))))
               (id (beanstalk:put c 0 0 60 body)))
          (same (list body id :reserved)
                (multiple-value-list (beanstalk:reserve c :timeout 1 :external-format nil)))
          (same body (beanstalk:peek c id :external-format nil))
          (same t (beanstalk:delete c id))))

      (check "a UTF-8 body through strings"
        (let* ((text (format nil "gr~C~Ce, ~C" (code-char 252) (code-char 223) (code-char 950)))
               (id (beanstalk:put c 0 0 60 text)))
          (same text (beanstalk:reserve c :timeout 1))
          (same t (beanstalk:delete c id))))

      (check "a body of exactly -z bytes, and one byte more"
        (let* ((body (octets (make-list max :initial-element 122)))
               (id (beanstalk:put c 0 0 60 body)))
          (same body (beanstalk:reserve c :timeout 1 :external-format nil))
          (same t (beanstalk:delete c id))
          ;; cl-beanstalk has no clause for JOB_TOO_BIG: it signals
          ;; bad-reply with the reply.
          (let ((e (signals beanstalk:bad-reply (beanstalk:put c 0 0 60 (octets (make-list (1+ max) :initial-element 122))))))
            (same '(:job_too_big) (beanstalk-internal::reply e)))
          ;; The connection goes on after the error.
          (same t (beanstalk:delete c (beanstalk:put c 0 0 60 "after")))))

      (check "errors: bad tube names, unknown jobs"
        (signals beanstalk:bad-message-format (beanstalk:use c "no spaces"))
        (signals beanstalk:bad-message-format (beanstalk:watch c "-starts-with-a-dash"))
        ;; Over 200 characters: the client refuses it before sending.
        (signals type-error (beanstalk:use c (make-string 201 :initial-element #\a)))
        (same "cl-a" (beanstalk:list-tube-used c))
        (same nil (beanstalk:delete c 999999))
        (same nil (beanstalk:touch c 999999))
        (same '(nil :not-found) (multiple-value-list (beanstalk:release c 999999 0 0)))
        (same '(nil :not-found) (multiple-value-list (beanstalk:bury c 999999 0)))
        (same '(nil nil :not-found) (multiple-value-list (beanstalk:peek c 999999)))
        (same '(nil nil) (multiple-value-list (beanstalk:stats-job c 999999)))
        ;; stats-tube's NOT_FOUND clause is spelt :not-found, which no reply
        ;; interns to (the reply is NOT_FOUND): it arrives as bad-reply.
        (let ((e (signals beanstalk:bad-reply (beanstalk:stats-tube c "never-made"))))
          (same '(:not_found) (beanstalk-internal::reply e))))

      (check "deadline soon: a warning, and :deadline-soon"
        (let ((id (beanstalk:put c 0 0 1 "short"))
              (warned nil))
          (same id (nth-value 1 (beanstalk:reserve c :timeout 1)))
          (handler-bind ((beanstalk:deadline-soon (lambda (w) (setf warned t) (muffle-warning w))))
            (same '(nil nil :deadline-soon) (multiple-value-list (beanstalk:reserve c :timeout 1))))
          (expect warned "no deadline-soon warning")
          (same t (beanstalk:delete c id))))

      (check "a blocked reserve is woken by a put from another connection"
        (beanstalk:with-beanstalk-connection (w host port)
          (beanstalk:watch w "cl-wake")
          (beanstalk:ignore w "default")
          (let ((waiter (sb-thread:make-thread
                         (lambda () (multiple-value-list (beanstalk:reserve w :timeout 5))))))
            (sleep 0.3)
            (beanstalk:use other "cl-wake")
            (let ((id (beanstalk:put other 0 0 60 "wake up")))
              (same (list "wake up" id :reserved) (sb-thread:join-thread waiter))
              (same t (beanstalk:delete w id))))))

      (check "a reserved job is released when its connection closes"
        (let ((w (beanstalk:connect host port)))
          (beanstalk:watch w "cl-close")
          (beanstalk:use other "cl-close")
          (let ((id (beanstalk:put other 0 0 60 "held")))
            (same id (nth-value 1 (beanstalk:reserve w :timeout 1)))
            (same "reserved" (getf (beanstalk:stats-job other id) :state))
            (beanstalk:quit w)
            (eventually (lambda () (equal "ready" (getf (beanstalk:stats-job other id) :state))))
            (same t (beanstalk:delete other id)))))

      ;; Last: the server stops taking jobs for good.
      (check "draining: a put signals beanstalkd-draining"
        (let ((pid (getf (beanstalk:stats c) :pid)))
          (sb-posix:kill pid sb-posix:sigusr1)
          (eventually (lambda () (equal "true" (getf (beanstalk:stats c) :draining))))
          (let ((e (signals beanstalk:beanstalkd-draining (beanstalk:put c 0 0 60 "refused"))))
            (expect (typep e 'beanstalk:beanstalk-error) "not a beanstalk-error"))))

      (beanstalk:disconnect c)
      (beanstalk:disconnect other)
      (sb-ext:exit :code (if (zerop *failed*) 0 1)))))

(main)
