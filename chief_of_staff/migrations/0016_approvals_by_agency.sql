-- 0016: an escalation looks for an unused approval of the same agency and capability bound to other
-- parameters (the likely mis-sent redeem) so it can point the agency at it. Approved, unredeemed
-- decisions are few at any time; this keeps that look from reading every decision ever made.
CREATE INDEX decisions_approved ON decisions (agency_id, expires_at) WHERE status = 'approved';
