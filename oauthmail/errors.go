package oauthmail

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/graphmail"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// Code is a stable name for a class of failure. Codes are API: they never change
// meaning, and new ones may be added. [ErrorCode] maps any error to one; the
// package documentation lists them with their panel numbers.
type Code string

// The codes. Each has a retry hint ([Code.Retryable]), an operator message in
// English and Japanese ([Code.Message]) and a panel number ([PanelTable]).
const (
	NotSignedIn          Code = "not_signed_in"          // no sign-in stored for the account
	SignInExpired        Code = "sign_in_expired"        // refresh token lapsed (idle for 90 days)
	ReauthRequired       Code = "reauth_required"        // revoked, password changed: sign in again
	ConsentRequired      Code = "consent_required"       // an administrator must consent for the app
	ConditionalAccess    Code = "conditional_access"     // a Conditional Access policy blocked the sign-in
	DeviceFlowBlocked    Code = "device_flow_blocked"    // policy blocks the device code flow
	MFARequired          Code = "mfa_required"           // multi-factor authentication is needed
	PasteRejected        Code = "paste_rejected"         // the pasted sign-in answer is not for this sign-in
	CertificateRejected  Code = "certificate_rejected"   // Entra refused the app's certificate credential
	CertificateExpired   Code = "certificate_expired"    // the app's client certificate expired
	Declined             Code = "declined"               // the user declined the sign-in
	CodeExpired          Code = "code_expired"           // the sign-in code expired before use
	InvalidClient        Code = "invalid_client"         // client ID or app settings are wrong
	ClientSecretExpired  Code = "client_secret_expired"  // the app's client secret expired
	AppNotFound          Code = "app_not_found"          // no such app registration in the tenant
	TenantNotFound       Code = "tenant_not_found"       // no such tenant
	InvalidScope         Code = "invalid_scope"          // scope missing or not granted
	GraphPermission      Code = "graph_permission"       // the app lacks Microsoft Graph Mail.Send (or its consent)
	GraphNotEnabled      Code = "graph_not_enabled"      // the mailbox is not enabled for Graph (REST)
	GraphDraftPermission Code = "graph_draft_permission" // the app lacks Graph Mail.ReadWrite, needed for large messages
	SMTPAuthDisabled     Code = "smtp_auth_disabled"     // SMTP AUTH is off for the tenant or mailbox
	AuthFailed           Code = "auth_failed"            // the mail server refused the token
	SendAsDenied         Code = "send_as_denied"         // the account may not send as that address
	SenderMismatch       Code = "sender_mismatch"        // sender is not the signed-in account (refused locally)
	Throttled            Code = "throttled"              // too many messages or connections; wait
	MessageTooLarge      Code = "message_too_large"      // the message exceeds the server's size limit
	TooManyRecipients    Code = "too_many_recipients"    // more recipients than one message may have
	TLSFailure           Code = "tls_failure"            // TLS could not be set up
	CertificateInvalid   Code = "certificate_invalid"    // the server certificate did not verify
	Network              Code = "network"                // the server could not be reached
	ServerUnavailable    Code = "server_unavailable"     // the service failed or answered nonsense
	BadInput             Code = "bad_input"              // a setting or message field is invalid
	StoreCorrupt         Code = "store_corrupt"          // the sign-in store is unreadable (or wrong key)
	StorageFailed        Code = "storage_failed"         // the store or outbox could not be written on this device, or its database or keyring service is unavailable
	MailboxNotFound      Code = "mailbox_not_found"      // the folder to receive from or move to does not exist
	IMAPAuthFailed       Code = "imap_auth_failed"       // the mail server refused the token for receiving (IMAP)
	Internal             Code = "internal"               // anything else
)

// ErrNotSignedIn is returned by methods that need a sign-in when the account has
// none stored. [ErrorCode] maps it (and [tokenstore.ErrNotFound]) to [NotSignedIn].
var ErrNotSignedIn = errors.New("oauthmail: not signed in")

// inputError is a configuration or message mistake found before any network use.
type inputError struct{ msg string }

func (e *inputError) Error() string { return "oauthmail: " + e.msg }

func badInput(msg string) error { return &inputError{msg} }

// ErrorCode returns the stable code for err, looking through wrapped errors from
// every layer (devicecode, tokenstore, smtpx, the network). It returns "" for a
// nil error and [Internal] for an error it does not recognise.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var (
		de  *devicecode.Error
		se  *smtpx.Error
		sm  *smtpx.SenderMismatchError
		hi  *smtpx.HeaderInjectionError
		ce  *tokenstore.CorruptError
		ie  *inputError
		cfe *devicecode.ConfigError
		gc  *graphConsentError
		ge  *graphmail.Error
		ne  net.Error
		dns *net.DNSError
		op  *net.OpError
	)
	switch {
	case errors.As(err, &sm):
		return SenderMismatch
	case errors.Is(err, devicecode.ErrPasteNotAnswer), errors.Is(err, devicecode.ErrStateMismatch), errors.Is(err, errNoPaste):
		return PasteRejected
	case errors.As(err, &gc):
		return GraphPermission
	case errors.As(err, &ge):
		return graphCode(ge)
	case errors.Is(err, graphmail.ErrTooLarge):
		return MessageTooLarge
	case errors.Is(err, graphmail.ErrTooManyRecipients):
		return TooManyRecipients
	case errors.As(err, &hi), errors.As(err, &ie), errors.As(err, &cfe),
		errors.Is(err, smtpx.ErrInvalidMessage):
		return BadInput
	case errors.As(err, &de):
		return deviceCode(de.Reason)
	case errors.As(err, &se):
		return smtpCode(se.Reason)
	case isIMAPError(err):
		return imapCode(err)
	case errors.Is(err, ErrNotSignedIn), errors.Is(err, tokenstore.ErrNotFound):
		return NotSignedIn
	case errors.As(err, &ce), errors.Is(err, tokenstore.ErrWrongKey):
		return StoreCorrupt
	case errors.As(err, new(*tokenstore.PermissionError)), isStorageFailure(err):
		return StorageFailed
	case isAttachmentFailure(err):
		return BadInput
	case isFileError(err):
		return Internal // a local file failure not tagged above is not "network"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return Network
	case errors.As(err, &dns), errors.As(err, &op), errors.As(err, &ne),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return Network
	}
	return Internal
}

// deviceCode maps a devicecode reason to its Code; a reason missing here is
// Internal, and the package tests check that every reason is present. A
// switch rather than a map literal: a map literal of fewer than 26 rows is
// built by start-up code, one insert per row, linked into every binary.
func deviceCode(r devicecode.Reason) Code {
	switch r {
	case devicecode.ReasonDeclined, devicecode.ReasonAccessDenied:
		return Declined
	case devicecode.ReasonExpired, devicecode.ReasonBadCode:
		return CodeExpired
	case devicecode.ReasonConditionalAccess:
		return ConditionalAccess
	case devicecode.ReasonDeviceFlowBlocked:
		return DeviceFlowBlocked
	case devicecode.ReasonMFARequired:
		return MFARequired
	case devicecode.ReasonConsentRequired:
		return ConsentRequired
	case devicecode.ReasonPublicClientNotAllowed, devicecode.ReasonInvalidClient, devicecode.ReasonRedirectMismatch:
		return InvalidClient
	case devicecode.ReasonAppNotFound:
		return AppNotFound
	case devicecode.ReasonTenantNotFound:
		return TenantNotFound
	case devicecode.ReasonInvalidScope, devicecode.ReasonNoAddress: // the scopes lacked profile and email
		return InvalidScope
	case devicecode.ReasonClientSecretExpired:
		return ClientSecretExpired
	case devicecode.ReasonClientAssertion:
		return CertificateRejected
	case devicecode.ReasonClientCertExpired:
		return CertificateExpired
	case devicecode.ReasonRefreshExpired:
		return SignInExpired
	case devicecode.ReasonReauthRequired:
		return ReauthRequired
	case devicecode.ReasonServer, devicecode.ReasonProtocol:
		return ServerUnavailable
	case devicecode.ReasonNetwork:
		return Network
	case devicecode.ReasonCertificate:
		return CertificateInvalid
	}
	return Internal
}

// smtpCode maps an smtpx reason to its Code (a switch, as deviceCode); a
// reason missing here is Internal, and the package tests check that every
// reason is present.
func smtpCode(r smtpx.Reason) Code {
	switch r {
	case smtpx.ReasonAuthFailed, smtpx.ReasonNotAuthenticated, smtpx.ReasonTokenExpiring:
		return AuthFailed
	case smtpx.ReasonSMTPAuthDisabled:
		return SMTPAuthDisabled
	case smtpx.ReasonSendAsDenied:
		return SendAsDenied
	case smtpx.ReasonThrottled:
		return Throttled
	case smtpx.ReasonTooLarge:
		return MessageTooLarge
	case smtpx.ReasonTooManyRecipients:
		return TooManyRecipients
	case smtpx.ReasonTLS:
		return TLSFailure
	case smtpx.ReasonCertificate:
		return CertificateInvalid
	case smtpx.ReasonNetwork:
		return Network
	case smtpx.ReasonTemporary:
		return ServerUnavailable
	case smtpx.ReasonRejected:
		return BadInput
	}
	return Internal
}

type codeInfo struct {
	retry  bool
	panel  int
	en, ja string
}

// codes is the built-in description of every code. Read-only.
var codes = map[Code]codeInfo{
	NotSignedIn: {false, 360, "Not linked to the mail service. Sign in with the mailbox that will send.",
		"メールサービスと連携されていません。送信に使うメールボックスでサインインしてください。"},
	SignInExpired: {false, 361, "The link to the mail service has expired (no mail was sent for a long time). An administrator must sign in again.",
		"メールサービスとの連携の有効期限が切れました（長期間送信がなかったため）。管理者が再度サインインしてください。"},
	ReauthRequired: {false, 370, "Sign in to the cloud service again (the sign-in was revoked or the password changed).",
		"クラウドサービスへの再サインインが必要です（サインインが取り消されたか、パスワードが変更されました）。"},
	CodeExpired: {false, 362, "The sign-in code expired before it was used. Start the sign-in again.",
		"サインインコードが使用前に期限切れになりました。もう一度サインインを開始してください。"},
	Declined: {false, 363, "The sign-in was declined. Start it again and accept the request.",
		"サインインが拒否されました。もう一度開始し、要求を承認してください。"},
	ConsentRequired: {false, 364, "An administrator must grant consent for this app in the organisation (admin consent), then sign in again.",
		"組織の管理者がこのアプリに同意（管理者の同意）を与えてから、再度サインインしてください。"},
	ConditionalAccess: {false, 365, "A Conditional Access policy blocked the sign-in. Ask the administrator to exclude this app or user.",
		"条件付きアクセスポリシーによりサインインがブロックされました。管理者にこのアプリまたはユーザーの除外を依頼してください。"},
	DeviceFlowBlocked: {false, 366, "The organisation blocks the device code sign-in. Use the paste-back sign-in instead (open the address on a PC, sign in, paste the final address here), or ask the administrator to exclude this app or user from the policy.",
		"組織がデバイスコードによるサインインをブロックしています。代わりに貼り付け方式のサインイン（PCでアドレスを開いてサインインし、最後に表示されたアドレスをここに貼り付け）を使うか、管理者にポリシーからの除外を依頼してください。"},
	PasteRejected: {false, 368, "The pasted text is not the answer to this sign-in. Paste the whole address of the blank page the browser ended on, or start the sign-in again.",
		"貼り付けた内容はこのサインインの応答ではありません。ブラウザーが最後に表示した空白ページのアドレス全体を貼り付けるか、サインインをやり直してください。"},
	CertificateRejected: {false, 369, "The app's certificate was refused. Check that the certificate uploaded to the app registration (Certificates & secrets) matches the one installed here, and that the device's clock is correct.",
		"アプリの証明書が拒否されました。アプリの登録（証明書とシークレット）にアップロードした証明書がこの機器の証明書と一致すること、機器の時計が正しいことを確認してください。"},
	CertificateExpired: {false, 378, "The app's client certificate has expired. Upload a new certificate to the app registration (Certificates & secrets) and install it here with its key.",
		"アプリのクライアント証明書の有効期限が切れました。アプリの登録（証明書とシークレット）に新しい証明書をアップロードし、その証明書と秘密鍵をこの機器にインストールしてください。"},
	MFARequired: {false, 367, "Multi-factor authentication is required. Complete it on the sign-in page and sign in again.",
		"多要素認証が必要です。サインインページで完了してから再度サインインしてください。"},
	InvalidClient: {false, 371, "The app registration does not allow this sign-in. Check the client ID and enable \"Allow public client flows\".",
		"アプリの登録設定がこのサインインを許可していません。クライアントIDを確認し、「パブリック クライアント フローを許可する」を有効にしてください。"},
	ClientSecretExpired: {false, 372, "The app's client secret has expired. Create a new client secret in the app registration (Certificates & secrets), enter its value and sign in again.",
		"アプリのクライアントシークレットの有効期限が切れました。アプリの登録（証明書とシークレット）で新しいクライアントシークレットを作成し、その値を入力して再度サインインしてください。"},
	AppNotFound: {false, 373, "No app with this client ID exists in the tenant. Check the client (application) ID.",
		"このクライアントIDのアプリがテナントに存在しません。クライアント（アプリケーション）IDを確認してください。"},
	TenantNotFound: {false, 374, "The tenant was not found. Check the tenant ID or domain.",
		"テナントが見つかりません。テナントIDまたはドメインを確認してください。"},
	InvalidScope: {false, 375, "The requested permission (scope) is wrong or not granted. Leave the scope at its default and check the app's API permissions.",
		"要求したアクセス許可（スコープ）が誤っているか付与されていません。スコープは既定のままにし、アプリのAPIのアクセス許可を確認してください。"},
	GraphPermission: {false, 376, "The app may not send through Microsoft Graph. In the Entra admin center, open App registrations > this app > API permissions, add Microsoft Graph delegated permission Mail.Send (application permission for app-only sending), grant admin consent, then try again.",
		"アプリはMicrosoft Graph経由で送信できません。Entra管理センターの［アプリの登録］＞このアプリ＞［APIのアクセス許可］で、Microsoft Graphの委任されたアクセス許可 Mail.Send（アプリのみの送信ではアプリケーションのアクセス許可）を追加し、管理者の同意を与えてから再試行してください。"},
	GraphNotEnabled: {false, 377, "The mailbox cannot be used through Microsoft Graph (it is on-premises, inactive or has no Exchange Online licence). Ask the administrator to license the mailbox, or to enable SMTP AUTH for it.",
		"このメールボックスはMicrosoft Graphから利用できません（オンプレミス、非アクティブ、またはExchange Onlineのライセンスがありません）。管理者にメールボックスへのライセンス割り当て、またはSMTP AUTHの有効化を依頼してください。"},
	GraphDraftPermission: {false, 379, "Large messages are sent through Microsoft Graph drafts, which need the Mail.ReadWrite permission. In the Entra admin center, add Microsoft Graph Mail.ReadWrite under App registrations > this app > API permissions and grant admin consent, or send smaller attachments.",
		"大きなメッセージはMicrosoft Graphの下書きを使って送信するため、Mail.ReadWrite のアクセス許可が必要です。Entra管理センターの［アプリの登録］＞このアプリ＞［APIのアクセス許可］でMicrosoft GraphのMail.ReadWriteを追加して管理者の同意を与えるか、添付ファイルを小さくしてください。"},
	SMTPAuthDisabled: {false, 380, "SMTP AUTH is disabled for the organisation or the mailbox. Ask the Exchange administrator to enable it (it can take a while to apply).",
		"組織またはメールボックスでSMTP AUTHが無効です。Exchange管理者に有効化を依頼してください（反映に時間がかかる場合があります）。"},
	AuthFailed: {true, 381, "The mail server refused the sign-in. Check that the sender is the signed-in account's UPN and that the mailbox exists, then sign in again if it persists.",
		"メールサーバーが認証を拒否しました。送信者がサインインしたアカウントのUPNであること、メールボックスが存在することを確認し、続く場合は再度サインインしてください。"},
	SendAsDenied: {false, 382, "The signed-in account may not send as this address. Use the account's UPN as the sender, or have the administrator grant Send As.",
		"サインインしたアカウントはこのアドレスとして送信できません。送信者をアカウントのUPNにするか、管理者に「送信者として送信」の権限付与を依頼してください。"},
	SenderMismatch: {false, 383, "The sender address differs from the signed-in account. Set the sender to the account's UPN (or add the address to the allowed senders if delegation is set up).",
		"送信者アドレスがサインインしたアカウントと異なります。送信者をアカウントのUPNに設定してください（代理送信が設定済みの場合は許可する送信者に追加してください）。"},
	MessageTooLarge: {false, 384, "The message is too large for the mail server. Send fewer or smaller attachments.",
		"メッセージがメールサーバーの上限を超えています。添付ファイルを減らすか小さくしてください。"},
	TooManyRecipients: {false, 386, "The message has more recipients than the mail server allows in one message (Exchange Online: 500 unless the administrator changed it). Split it into several messages.",
		"1通のメッセージの宛先数がメールサーバーの上限を超えています（Exchange Onlineでは管理者が変更していなければ500）。複数のメッセージに分けて送信してください。"},
	Throttled: {true, 385, "The mail server is limiting this account (too many messages or connections). Wait and try again.",
		"メールサーバーがこのアカウントの送信を制限しています（メッセージまたは接続が多すぎます）。しばらく待ってから再試行してください。"},
	TLSFailure: {false, 390, "A secure (TLS) connection could not be set up. Check the server, port 587 and STARTTLS.",
		"安全な（TLS）接続を確立できませんでした。サーバー、ポート587、STARTTLSの設定を確認してください。"},
	CertificateInvalid: {false, 391, "The server certificate could not be verified. Check the date and time, the server name and the trusted certificates.",
		"サーバー証明書を検証できませんでした。日付と時刻、サーバー名、信頼する証明書を確認してください。"},
	Network: {true, 392, "The server could not be reached. Check the network, DNS and proxy settings.",
		"サーバーに接続できませんでした。ネットワーク、DNS、プロキシの設定を確認してください。"},
	ServerUnavailable: {true, 393, "The service is temporarily unavailable. Try again later.",
		"サービスが一時的に利用できません。しばらくしてから再試行してください。"},
	BadInput: {false, 395, "A setting or message field is invalid. Check the addresses and settings.",
		"設定またはメッセージの項目が正しくありません。アドレスと設定を確認してください。"},
	StoreCorrupt: {false, 396, "The saved sign-in could not be read (damaged, or wrong key). Sign in again.",
		"保存されたサインイン情報を読み取れません（破損しているか鍵が違います）。再度サインインしてください。"},
	// Retryable: space can be freed, a disk remounted and a database
	// restarted without changing any setting here, and an outbox must keep
	// (not dead-letter) a message that failed only because the device's own
	// disk, or the database holding the sign-in or the queue, did.
	StorageFailed: {true, 397, "The sign-in store or the outbox could not be read or written (on this device: disk full, read-only, no permission, or the path is not a directory; or the database or keyring service holding it is unavailable). Free space, fix the path and its permissions, or restore the service, then try again.",
		"サインイン情報の保存先または送信待ちキューを読み書きできませんでした（この機器のディスクの空き不足、読み取り専用、権限なし、パスがフォルダーではない、または保存先のデータベースやキーリングのサービスが利用できない）。空き容量を確保するか、パスと権限を直すか、サービスを復旧してから、再試行してください。"},
	MailboxNotFound: {false, 394, "The mail folder to receive from (or to move handled mail to) does not exist. Create it in the mailbox or correct the folder setting.",
		"受信するメールフォルダー（または処理済みメールの移動先）が存在しません。メールボックスにフォルダーを作成するか、フォルダーの設定を直してください。"},
	IMAPAuthFailed: {false, 398, "The mail server refused the sign-in for receiving (IMAP). Ask the administrator to enable IMAP for the mailbox and to grant the app IMAP.AccessAsUser.All, then sign in again.",
		"メールサーバーが受信（IMAP）の認証を拒否しました。管理者にメールボックスのIMAPの有効化とアプリへのIMAP.AccessAsUser.Allの付与を依頼してから、再度サインインしてください。"},
	Internal: {false, 399, "An unexpected error occurred. Contact support with the log.",
		"予期しないエラーが発生しました。ログを添えてサポートに連絡してください。"},
}

// Codes returns every code, in panel-number order of the default table.
func Codes() []Code {
	return []Code{NotSignedIn, SignInExpired, CodeExpired, Declined, ConsentRequired,
		ConditionalAccess, DeviceFlowBlocked, MFARequired, PasteRejected, CertificateRejected, ReauthRequired, InvalidClient,
		ClientSecretExpired, AppNotFound, TenantNotFound, InvalidScope, GraphPermission, GraphNotEnabled,
		CertificateExpired, GraphDraftPermission, SMTPAuthDisabled,
		AuthFailed, SendAsDenied, SenderMismatch, MessageTooLarge, Throttled, TooManyRecipients, TLSFailure,
		CertificateInvalid, Network, ServerUnavailable, MailboxNotFound, BadInput, StoreCorrupt, StorageFailed, IMAPAuthFailed, Internal}
}

// Retryable reports whether trying the same thing again later, without changing
// any setting, can succeed.
func (c Code) Retryable() bool { return codes[c].retry }

// Message returns what the operator should do, in English (lang "en" or "") or
// Japanese (lang "ja"). Unknown codes get the message of [Internal]; other
// languages get English.
func (c Code) Message(lang string) string {
	info, ok := codes[c]
	if !ok {
		info = codes[Internal]
	}
	if lang == "ja" {
		return info.ja
	}
	return info.en
}

// PanelTable maps codes to the numbers a device shows on its panel or prints on
// a job log. A nil or empty table means [DefaultPanels]. Integrators replace it
// with their own numbering; a code missing from a non-empty table gets the
// table's number for [Internal], or 0 if that is missing too.
type PanelTable map[Code]int

// DefaultPanels returns a new copy of the default table: the job error codes
// printers already show for mail-service sign-ins, 360 (not linked), 361 (link
// expired) and 370 (re-sign-in required), where they fit, and the rest in 362–399 as listed in the package documentation.
func DefaultPanels() PanelTable {
	t := make(PanelTable, len(codes))
	for c, info := range codes {
		t[c] = info.panel
	}
	return t
}

// Panel returns the panel number for c.
func (t PanelTable) Panel(c Code) int {
	if len(t) == 0 {
		if info, ok := codes[c]; ok {
			return info.panel
		}
		return codes[Internal].panel
	}
	if n, ok := t[c]; ok {
		return n
	}
	return t[Internal]
}

// graphCode maps a Microsoft Graph error (https://learn.microsoft.com/graph/errors)
// to a code.
func graphCode(e *graphmail.Error) Code {
	switch e.Code {
	case "ErrorAccessDenied":
		if e.Op == "draft" || e.Op == "attach" || e.Op == "createUploadSession" {
			return GraphDraftPermission // drafts need Mail.ReadWrite
		}
		return GraphPermission
	case "MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI":
		return GraphNotEnabled
	case "ErrorSendAsDenied":
		return SendAsDenied
	case "ErrorMessageSizeExceeded", "ErrorRequestEntityTooLarge":
		return MessageTooLarge
	case "ErrorTooManyRecipients":
		return TooManyRecipients
	case "ErrorQuotaExceeded":
		return Throttled
	case "ErrorInvalidRecipients", "ErrorInvalidUser":
		return BadInput
	}
	switch {
	case e.StatusCode == 0:
		return Network
	case e.StatusCode == 401:
		return AuthFailed
	case e.StatusCode == 403:
		return GraphPermission
	case e.StatusCode == 413:
		return MessageTooLarge
	case e.StatusCode == 429:
		return Throttled
	case e.StatusCode >= 500:
		return ServerUnavailable
	}
	return Internal
}
